"""HTML reports (jinja2): participant and group."""


def render(template: str, **context) -> str:
    """Render a template of ``bidsad/reports/templates`` (autoescaped HTML)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("bidsad", "reports/templates"), autoescape=select_autoescape(["html"]))
    return env.get_template(template).render(**context)
