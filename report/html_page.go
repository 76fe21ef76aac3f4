package report

// The page skeleton and its style sheet. The Content-Security-Policy is a
// second lock on the claim that the page loads nothing and runs nothing:
// a browser refuses any script or external resource even if one slipped in.

const pageSrc = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>` + pageCSS + `</style>
</head>
<body>
<main>
<header class="top"><h1>{{.Heading}}</h1><span class="tool">pathtrace report</span></header>
<section id="verdict" class="verdict {{if .Clean}}ok{{else}}bad{{end}}">
<p class="v">{{.Verdict}}</p>
<ul class="stats">{{range .Stats}}<li{{if .Alarm}} class="alarm"{{end}}><b>{{.N}}</b> {{.What}}</li>{{end}}</ul>
<p class="sum">{{.Summary}}</p>
{{- with .Live}}
<p class="sum">{{.}}</p>
{{- end}}
{{- range .Clocks}}
<p class="sum">Clocks: {{.}}</p>
{{- end}}
</section>
{{- with .Path}}
<section id="path"><h2>Path</h2>
<p class="route">{{.Route}}</p>
{{template "table" .Points}}
{{- if .FDB.Rows}}
<h3>Bridge forwarding entries for the pods' MACs</h3>
{{template "table" .FDB}}
{{- end}}
{{- range .Notes}}
<p class="note">note: {{.}}</p>
{{- end}}
</section>
{{- end}}
<section id="traces"><h2>Traces across the path</h2>
{{- range .LaneNotes}}
<p class="note">{{.}}</p>
{{- end}}
{{.Legend}}
<div class="scroll">{{.Lanes}}</div>
</section>
{{- if .Latency}}
<section id="latency"><h2>Per-hop latency</h2>
<p class="note">{{.LatencyNote}}</p>
<table><thead><tr>{{range .LatencyHeader}}<th>{{.}}</th>{{end}}</tr></thead><tbody>
{{- range .Latency}}
<tr>{{with .Node}}<td>{{.}}</td>{{end}}{{range $i, $c := .Cells}}<td{{if $i}} class="r"{{end}}>{{$c}}</td>{{end}}<td class="hist">{{.Hist}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Segments.Rows}}
<h3>Time per node and on the wire (from each node's first point to its last)</h3>
{{template "table" .Segments}}
{{- end}}
</section>
{{- end}}
<section id="anomalies"><h2>Anomalies</h2>
{{if .Anomalies.Rows}}{{template "table" .Anomalies}}{{else}}<p class="note">None.</p>{{end}}
{{- if .Warnings}}
<h3>Warnings</h3>
<ul>{{range .Warnings}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
</section>
<section id="points"><h2>Points coverage</h2>
{{template "table" .Points}}
</section>
{{- with .Evidence}}
<section id="evidence"><h2>Evidence written</h2>
<ul class="files">{{range .}}<li>{{.}}</li>{{end}}</ul>
</section>
{{- end}}
<footer>{{.Tool}}{{with .Version}} {{.}}{{end}} · report schema {{.Schema}} · one self-contained page: no script, no external resource</footer>
</main>
</body>
</html>
{{define "table"}}<table><thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead><tbody>
{{- $r := .Right}}{{range .Rows}}
<tr>{{range $i, $c := .}}<td{{if index $r $i}} class="r"{{end}}>{{cell $c}}</td>{{end}}</tr>
{{- end}}
</tbody></table>{{end}}
`

// pageCSS: one colour per meaning, the same in the legend and the diagram
// (requests blue, replies green and dashed, lost red, unseen orange,
// reflections purple). DejaVu first: it is what a Debian box has.
const pageCSS = `
:root{--fg:#1f2328;--mut:#59636e;--rule:#d1d9e0;--bg2:#f6f8fa;--req:#0969da;--rep:#1a7f37;--bad:#cf222e;--gap:#bc4c00;--refl:#8250df}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:14px/1.45 "DejaVu Sans",system-ui,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:14px 20px 10px}
.top{display:flex;align-items:baseline;gap:14px;margin-bottom:10px}
h1{font-size:21px;margin:0}
.tool{color:var(--mut);font-size:13px}
h2{font-size:16px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--rule)}
h3{font-size:14px;margin:14px 0 6px}
.verdict{border:1px solid;border-radius:6px;padding:10px 16px}
.verdict.ok{background:#dafbe1;border-color:#4ac26b}
.verdict.bad{background:#ffebe9;border-color:#ff8182}
.v{font-size:17px;font-weight:bold;margin:2px 0 8px}
.stats{list-style:none;margin:0 0 6px;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}
.stats b{font-size:17px}
.stats .alarm{color:var(--bad)}
.sum,.note,.route{margin:3px 0;color:var(--mut);font-size:13px}
.route{color:var(--fg)}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0}
th,td{border:1px solid var(--rule);padding:3px 8px;text-align:left;vertical-align:middle}
th{background:var(--bg2);font-weight:bold;font-size:11.5px;color:var(--mut)}
td.r{text-align:right;font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px;white-space:nowrap}
td.hist{padding:1px 4px}
.scroll{overflow-x:auto;border:1px solid var(--rule);border-radius:4px}
svg{display:block}
svg text{font-family:"DejaVu Sans",system-ui,sans-serif}
ul.files{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px}
footer{margin-top:28px;padding-top:8px;border-top:1px solid var(--rule);color:var(--mut);font-size:12px}
.head{fill:var(--bg2)}
.alt{fill:#f6f8fa}
.lane{stroke:#8c959f;stroke-width:1.2}
.ln-name{font-size:12.5px;font-weight:bold;fill:var(--fg)}
.ln-sub,.gh,.ts,.nt,.tk,.lg,.skiptx{fill:var(--mut)}
.ln-sub,.gh,.ts{font-size:10.5px}
.ts,.dt{font-family:"DejaVu Sans Mono",ui-monospace,monospace!important}
.cap{font-size:12px;font-weight:bold;fill:var(--fg)}
.num{font-size:12px;font-weight:bold;fill:var(--fg)}
.lbl{font-size:11.5px;fill:var(--fg)}
.nt{font-size:11px}
.nt.bad{fill:var(--bad);font-weight:bold}
.lg{font-size:11.5px;fill:var(--fg)}
.tk{font-size:9.5px}
.ln{fill:none;stroke-width:1.8;stroke-linejoin:round}
.req .ln,.kreq .ln{stroke:var(--req)}
.rep .ln,.krep .ln{stroke:var(--rep);stroke-dasharray:7 3}
.req .dot,.req .ah,.kreq .ah{fill:var(--req)}
.rep .dot,.rep .ah,.krep .ah{fill:var(--rep)}
.agg .ln,.kagg .ln{stroke-width:5;stroke-opacity:.4}
.ln-name,.ln-sub,.dt{text-anchor:middle}
.dt.side{text-anchor:start}
.dt{font-size:10px;fill:var(--fg);paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.dt.neg{fill:var(--bad);font-weight:bold}
.dt.rfd{fill:var(--refl)}
.lost,.klost{fill:none;stroke:var(--bad);stroke-width:2.6;stroke-linecap:round}
.stub,.kstub{stroke:var(--bad);stroke-width:1.4;stroke-dasharray:3 3}
.gap,.kgap{fill:#fff;stroke:var(--gap);stroke-width:2;stroke-dasharray:2.5 1.5}
.rf,.krf{stroke:var(--refl);stroke-width:1.6;stroke-dasharray:2 3}
.refl,.krefl{fill:var(--refl)}
.kruler{stroke:var(--mut);stroke-width:1}
.nodeband{fill:#ddf4ff;stroke:#54aeff;stroke-width:1}
.node-name{font-size:11.5px;font-weight:bold;fill:var(--fg);text-anchor:middle}
.skipln{stroke:#afb8c1;stroke-dasharray:2 4}
.skiptx{font-size:10.5px;paint-order:stroke;stroke:#fff;stroke-width:4px}
.bar{fill:#54aeff}
.base,.tick{stroke:#d1d9e0;stroke-width:1}
.wh{stroke:var(--mut);stroke-width:1.2}
.p50{stroke:var(--fg);stroke-width:2.4}
.p99{stroke:var(--gap);stroke-width:2.4}
.negn{font-size:10px;fill:var(--mut)}
`
