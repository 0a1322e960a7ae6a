"""Self-contained HTML reports: one file a person opens anywhere (images embedded, no network).

    from segdeploy.reports.html import HtmlReport, Table, Verdict, write_html
    write_html(HtmlReport("verify x.onnx", Verdict(True, "PASS"), sections=[Table(...)]), "r.html")

A plot goes in as PNG bytes, e.g. bench's latency figure:

    buf = io.BytesIO(); draw_plot(bench_report).savefig(buf, format="png", dpi=120)
    Figure("Latency", buf.getvalue())

Modules: `html` (the page from plain data: tables, image panels, legends, a plot's PNG),
`masks` (class masks and disagreement maps as RGB pixels, numpy only). Commands (`verify`,
`bench`) turn their results into these parts; nothing here knows what a verify is.
"""
