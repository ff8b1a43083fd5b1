"""The erasure report: one self-contained HTML page per run (images inlined, no scripts, viewable offline)
and its JSON twin, stating what was asked, what was done to which data, what was measured and how, what the
gates decided, and what the registry holds now.
"""

import base64
import html
import json
from pathlib import Path

REPORT_HTML, REPORT_JSON = "erasure_report.html", "erasure_report.json"
REPORT_DIR = "report"  # where the report lies in the MLflow run and in a registered version's artifacts


STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}.pass{color:#0a6b2d;font-weight:600}.fail{color:#b00020;font-weight:600}
.verdict{font-size:1.2rem;padding:.6rem 1rem;border-radius:.3rem;display:inline-block}
.verdict.pass{background:#e3f4e8}.verdict.fail{background:#fbe3e6}img{max-width:100%;border:1px solid #ddd}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}figure{margin:.5rem 0}
@media print{body{margin:0;max-width:none}h2,figure,tr{break-inside:avoid}h2{break-after:avoid}
pre{white-space:pre-wrap}}"""


class Markup(str):
    """HTML this module built itself (not escaped again)."""


def _table(rows: list[list[object]], header: list[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _verdict(passed: bool) -> Markup:
    return Markup(f'<span class="{"pass" if passed else "fail"}">{"pass" if passed else "FAIL"}</span>')


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    name = html.escape(Path(path).stem)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _details(title: str, body: str) -> str:
    """A collapsed section: what a reviewer needs only when checking how something was done."""
    return f"<details><summary>{html.escape(title)}</summary>{body}</details>"


def _erased(req: dict) -> str:
    target = req["target"]
    return f"classes {target['classes']}" if target.get("classes") else f"the concept {target.get('concept')!r}"


def render_html(facts: dict, images: dict[str, list[Path]]) -> str:
    """The report page, for a reviewer reading top down: the verdict and what was erased; the gates; the before/after
    and
    attacked samples (`images`: section title -> PNG files, in order); the attack table; then the details, collapsed."""
    req, outcome = facts["request"], facts["outcome"]
    metrics, attacks = facts["evaluation"]["metrics"], facts["evaluation"].get("attacks") or {}
    failed = [g["gate"] for g in facts["gates"]["gates"] if not g["passed"]]
    top = [
        f"<h1>Erasure report: request {html.escape(req['request']['id'])}</h1>",
        f'<p class="verdict {"pass" if outcome["promoted"] else "fail"}">{html.escape(outcome["summary"])}</p>',
        _table(
            [
                ["erased", _erased(req)],
                ["from", f"{req['base_model']} (sha256 {facts['base_model_sha256'][:16]}...)"],
                ["requested by", req["request"]["requester"]],
                ["reason", req["request"]["reason"]],
                ["legal basis", req["request"].get("legal_basis")],
                [
                    "gates",
                    f"{len(facts['gates']['gates']) - len(failed)} of {len(facts['gates']['gates'])} passed"
                    + (f"; failed: {', '.join(failed)}" if failed else ""),
                ],
            ]
        ),
        "<h2>Gates</h2>"
        + _table(
            [
                [_verdict(g["passed"]), g["gate"], g["measures"], g["value"], g["threshold"]]
                for g in facts["gates"]["gates"]
            ],
            ["verdict", "gate", "measures", "value", "threshold"],
        ),
    ]
    pictures = [
        f"<h2>{html.escape(title)}</h2>" + "".join(_image(p) for p in paths) for title, paths in images.items() if paths
    ]
    attack_table = (
        [
            "<h2>Recovery attacks</h2>"
            + _table(
                [
                    [
                        name,
                        v.get("original"),
                        v.get("gold"),
                        v.get("unlearned"),
                        v.get("margin_over_gold"),
                        v.get("area_over_gold"),
                        len(v.get("curve") or []) or 1,
                    ]
                    for name, v in attacks.items()
                ],
                [
                    "attack",
                    "original (best point)",
                    "gold (retrained without the class)",
                    "candidate",
                    "candidate minus gold, worst point",
                    "area over gold",
                    "budget points",
                ],
            )
        ]
        if attacks
        else []
    )
    details = [
        _details(
            "Metrics, original vs unlearned",
            _table(
                [
                    [k, metrics["original"].get(k), v, facts["evaluation"]["delta"].get(k)]
                    for k, v in metrics["unlearned"].items()
                ],
                ["metric", "original", "unlearned", "delta"],
            ),
        ),
        _details(
            "Data: forget and retain sets",
            _table([[k, v] for k, v in facts["curation"]["summary"].items()])
            + "<p>Great Expectations: "
            + ("all expectations passed" if facts["curation"]["validation"].get("success") else "FAILED")
            + "</p>"
            + _table(
                [
                    [name, suite.get("success"), suite.get("statistics", {})]
                    for name, suite in facts["curation"]["validation"].get("suites", {}).items()
                ],
                ["set", "success", "statistics"],
            ),
        ),
        _details(
            "Earlier erasures kept in force",
            (
                _table(
                    [
                        [e["request_id"], e["version"], e.get("classes") or e.get("concept")]
                        for e in facts["earlier_erasures"]
                    ],
                    ["request", "version", "erased"],
                )
                if facts["earlier_erasures"]
                else "<p>none: this is the first erasure of this registered model</p>"
            )
            + (
                _table(
                    [
                        [c["request_id"], c["metric"], c["original"], c["unlearned"], c["threshold"]]
                        for c in facts.get("earlier_checks", [])
                    ],
                    ["earlier concept erasure", "re-measured", "base", "unlearned", "threshold"],
                )
                if facts.get("earlier_checks")
                else ""
            ),
        ),
        _details("Unlearning settings", f"<pre>{html.escape(json.dumps(req['unlearning'], indent=1))}</pre>"),
        _details(
            "Protocol of every metric",
            _table(
                [
                    [k, Markup(f"<pre>{html.escape(json.dumps(v, indent=1))}</pre>")]
                    for k, v in facts["evaluation"]["protocol"].items()
                ],
                ["metric", "how it was measured"],
            ),
        ),
        _details(
            "Registry",
            _table(
                [[k, v] for k, v in outcome.items() if k != "summary"]
                + [["submitted for", f"{req['registry']['model_name']} @{req['registry']['alias']}"]]
            ),
        ),
        _details("Provenance", _table([[k, v] for k, v in facts["provenance"].items()])),
    ]
    body = "".join(top + pictures + attack_table + ["<h2>Details</h2>"] + details)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Erasure report '
        f"{html.escape(req['request']['id'])}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def write_report(facts: dict, images: dict[str, list[Path]], out: Path) -> tuple[Path, Path]:
    """`out/erasure_report.html` and its JSON twin `out/erasure_report.json` (the same facts, no images)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_JSON).write_text(json.dumps(facts, indent=2, default=str))
    (out / REPORT_HTML).write_text(render_html(facts, images))
    return out / REPORT_HTML, out / REPORT_JSON
