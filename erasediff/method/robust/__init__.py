"""This project's additions that make an erasure hold under attack, one module per setting that selects it:
`relearn`, `forget_on_retain`, `retain_anchor`, `forget_row` (docs/method.md, recipe `robust`)."""
