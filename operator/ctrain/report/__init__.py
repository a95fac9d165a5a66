"""What the registry knows about a model, gathered for people: `ctrain models` and its report.

`history` reads versions, champion moves, rejections and monitoring records into plain
data (no plotting); `html` draws them into one self-contained page and needs the optional
``report`` extra (plotly), so nothing else in ctrain imports it.
"""
