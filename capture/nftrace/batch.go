package nftrace

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batch builds one nf_tables transaction sent on the tracer's own socket.
// google/nftables does not send table flags, and the owner flag (the
// kernel removes an owner's tables when its socket closes) must be set
// when the table is made, by the socket that keeps it.
type batch struct {
	msgs []netlink.Message
	err  error
}

func nfgen(fam uint8, resID uint16, attrs []netlink.Attribute) ([]byte, error) {
	b := []byte{fam, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
	if len(attrs) == 0 {
		return b, nil
	}
	a, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	return append(b, a...), nil
}

func (b *batch) add(typ uint16, flags netlink.HeaderFlags, fam uint8, attrs []netlink.Attribute) {
	if b.err != nil {
		return
	}
	data, err := nfgen(fam, 0, attrs)
	if err != nil {
		b.err = err
		return
	}
	b.msgs = append(b.msgs, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   data,
	})
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (b *batch) newTable(fam uint8, name string, flags uint32) {
	b.add(unix.NFT_MSG_NEWTABLE, netlink.Create, fam, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cstr(name)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: be32(flags)},
	})
}

func (b *batch) delTable(fam uint8, name string) {
	b.add(unix.NFT_MSG_DELTABLE, 0, fam, []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstr(name)}})
}

// newChain adds a base chain of type filter at hook with priority prio.
func (b *batch) newChain(fam uint8, table, name string, hook uint32, prio int32) {
	h, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(hook)},
		{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(uint32(prio))},
	})
	if err != nil {
		b.err = err
		return
	}
	b.add(unix.NFT_MSG_NEWCHAIN, netlink.Create, fam, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(table)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(name)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: h},
		{Type: unix.NFTA_CHAIN_TYPE, Data: cstr("filter")},
	})
}

func (b *batch) newRule(fam uint8, table, chain string, exprs []expr.Any) {
	var list []netlink.Attribute
	for _, e := range exprs {
		d, err := expr.Marshal(fam, e)
		if err != nil {
			b.err = err
			return
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: d})
	}
	l, err := netlink.MarshalAttributes(list)
	if err != nil {
		b.err = err
		return
	}
	b.add(unix.NFT_MSG_NEWRULE, netlink.Create|unix.NLM_F_APPEND, fam, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: l},
	})
}

// send commits the batch on c and waits for every message's ack; the
// first error fails the whole transaction (the kernel applies all or none).
func (b *batch) send(c *netlink.Conn) error {
	if b.err != nil {
		return fmt.Errorf("build nf_tables batch: %w", b.err)
	}
	begin, _ := nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	msgs := append([]netlink.Message{{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: netlink.Request}, Data: begin}}, b.msgs...)
	msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: netlink.Request}, Data: begin})
	sent, err := c.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("send nf_tables batch: %w", err)
	}
	want := map[uint32]bool{}
	for _, m := range sent[1 : len(sent)-1] {
		want[m.Header.Sequence] = true
	}
	for len(want) > 0 {
		replies, err := c.Receive()
		if err != nil {
			return fmt.Errorf("nf_tables batch: %w", err)
		}
		for _, r := range replies {
			if r.Header.Type == netlink.Error {
				delete(want, r.Header.Sequence)
			}
		}
	}
	return nil
}
