package lab

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
)

// The ipsec backend: IPsec ESP in tunnel mode (RFC 4303) between the
// nodes, as Calico's and Cilium's IPsec modes carry pod traffic. This
// kernel has XFRM but no ESP ("ip xfrm state add ... proto esp": Requested
// type not found), so the tunnel process does the transform: AES-128-CBC
// (RFC 3602) with HMAC-SHA-256-128 (RFC 4868), the keys below, one SA per
// direction with SPI 0x1001 (nodeA → nodeB) and 0x1002 (nodeB → nodeA).
// tshark decrypts the captures with these keys (testdata/gen/make-2node.sh).
// They are a lab's, published here: nothing they protect is secret.
var (
	espEncKey  = []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}
	espAuthKey = []byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
		0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f}
)

const (
	espSPIBase = 0x1000 // node i's outbound SA is espSPIBase+i+1
	espIV      = aes.BlockSize
	espICV     = 16 // HMAC-SHA-256 truncated to 128 bits
	espNextIP4 = 4  // next header of a tunnel-mode packet: IPv4
)

// espSA is one direction's security association.
type espSA struct {
	spi   uint32
	block cipher.Block
	mac   hash.Hash
	seq   uint32
}

func newESPSA(spi uint32) (*espSA, error) {
	b, err := aes.NewCipher(espEncKey)
	if err != nil {
		return nil, fmt.Errorf("ESP cipher: %w", err)
	}
	return &espSA{spi: spi, block: b, mac: hmac.New(sha256.New, espAuthKey)}, nil
}

// seal returns the ESP payload carrying IPv4 packet p: SPI, sequence
// number, IV, the encrypted packet with RFC 4303's padding (1, 2, 3...),
// pad length and next header, and the ICV over all before it.
func (sa *espSA) seal(p []byte) ([]byte, error) {
	pad := (aes.BlockSize - (len(p)+2)%aes.BlockSize) % aes.BlockSize
	n := 8 + espIV + len(p) + pad + 2
	out := make([]byte, n, n+espICV)
	sa.seq++
	binary.BigEndian.PutUint32(out[0:], sa.spi)
	binary.BigEndian.PutUint32(out[4:], sa.seq)
	iv := out[8 : 8+espIV]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	plain := out[8+espIV:]
	copy(plain, p)
	for i := range pad {
		plain[len(p)+i] = byte(i + 1)
	}
	plain[len(plain)-2], plain[len(plain)-1] = byte(pad), espNextIP4
	cipher.NewCBCEncrypter(sa.block, iv).CryptBlocks(plain, plain)
	sa.mac.Reset()
	sa.mac.Write(out)
	return sa.mac.Sum(out)[:n+espICV], nil
}

// open returns the IPv4 packet inside ESP payload p of this SA, or false
// when p is not this SA's or fails its ICV or padding.
func (sa *espSA) open(p []byte) ([]byte, bool) {
	n := len(p) - espICV
	if n < 8+espIV+aes.BlockSize || (n-8-espIV)%aes.BlockSize != 0 || binary.BigEndian.Uint32(p) != sa.spi {
		return nil, false
	}
	sa.mac.Reset()
	sa.mac.Write(p[:n])
	if !hmac.Equal(sa.mac.Sum(nil)[:espICV], p[n:]) {
		return nil, false
	}
	plain := p[8+espIV : n]
	cipher.NewCBCDecrypter(sa.block, p[8:8+espIV]).CryptBlocks(plain, plain)
	pad, next := int(plain[len(plain)-2]), plain[len(plain)-1]
	if next != espNextIP4 || pad+2 > len(plain) {
		return nil, false
	}
	inner := plain[:len(plain)-2-pad]
	for i, b := range plain[len(inner) : len(plain)-2] {
		if b != byte(i+1) {
			return nil, false
		}
	}
	return inner, true
}
