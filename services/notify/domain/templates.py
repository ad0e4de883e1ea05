"""The reply templates a street may edit: which variables each may use, sample values for the preview, and the
checks a new text must pass before it is saved. Pure, no I/O.

Variables are declared here and only here: a new one is one `Variable(...)` line naming the templates that get
it (the handlers pass the value when they render). The defaults are the files in services/notify/templates.
"""
from __future__ import annotations

from dataclasses import dataclass

import jinja2
import jinja2.meta

# An SMS segment of a long (concatenated) Chinese SMS carries 67 characters (UCS-2, 70 less the joining header).
SEGMENT_CHARS = 67
# A reply, rendered with the sample values, fits in three segments: what a resident reads on one screen, and what
# the street pays for per message at most. Texts quoting an owner's words are cut by `brief` before rendering.
MAX_SEGMENTS = 3
MAX_CHARS = SEGMENT_CHARS * MAX_SEGMENTS
MAX_SOURCE_CHARS = 2000


@dataclass(frozen=True)
class Variable:
    """A value a template may use: its name, what it is, a sample for the preview, and the templates given it."""

    name: str
    description: str
    sample: str
    templates: tuple[str, ...]


ALL = ("acknowledgement", "rejection", "progress_merged", "progress_signed", "progress_extended",
       "progress_reopened", "explanation", "resolution", "survey", "escalation_leadership")

VARIABLES: tuple[Variable, ...] = (
    Variable("signature", "短信签名（街道名称）", "文化路街道", ALL),
    Variable("case_no", "案件编号", "20261206-0001", ALL),
    Variable("reason", "不予受理或升级的原因", "该处不属于本街道管辖", ("rejection", "escalation_leadership")),
    Variable("into", "合并至的案件编号", "20261205-0042", ("progress_merged",)),
    Variable("due", "延期后的办结时限", "12月8日17:30", ("progress_extended",)),
    Variable("explanation", "情况说明", "该路段管线改造，需待施工结束后统一修复", ("explanation",)),
    Variable("result", "处置结果", "已更换路灯灯泡，恢复照明", ("resolution",)),
    Variable("closes", "回访评价截止时间", "12月13日17:30", ("survey",)),
    # The resident page's signed link to answer the survey without typing a phone (/my/?s=…, shared/residents.py).
    Variable("survey_link", "网上评价链接（免输入手机号）", "https://wangge.example/my/?s=NWVmZWZkMjctNGQ0Zi00MmY4LWIwNjYtMDY5MDVmMTA0ZTBmLjE3OTcxNTQyMDA.9ei_v6mXVPRk6duWN5JRug", ("survey",)),
    Variable("leader", "带班领导姓名", "王主任", ("escalation_leadership",)),
)


class TemplateRefused(ValueError):
    """A template text that cannot be saved; `reasons` says every why (Chinese and English)."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


def variables_of(name: str) -> list[Variable]:
    """The variables template `name` may use."""
    return [v for v in VARIABLES if name in v.templates]


def samples_of(name: str) -> dict[str, str]:
    """Sample values for a preview of template `name`."""
    return {v.name: v.sample for v in variables_of(name)}


def segments(text: str) -> int:
    """How many SMS segments a text takes (one up to 70 characters, else 67 a segment)."""
    return 1 if len(text) <= 70 else -(-len(text) // SEGMENT_CHARS)


def _environment() -> jinja2.Environment:
    # Sandboxed: the text comes from the street's admin; it must not reach Python objects through attributes.
    from jinja2.sandbox import SandboxedEnvironment
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_preview(name: str, source: str, values: dict[str, str] | None = None) -> str:
    """The text `source` gives with the sample values (overridden by `values`); TemplateRefused if it is broken."""
    check(name, source, budget=False)
    env = _environment()
    try:
        return env.from_string(source).render(**{**samples_of(name), **(values or {})}).strip()
    except jinja2.TemplateError as exc:
        raise TemplateRefused([f"the template fails to render: {exc} (模板无法生成短信)"]) from None


def check(name: str, source: str, *, budget: bool = True) -> str:
    """The text a valid `source` renders with the samples; TemplateRefused with every reason otherwise:
    unknown template, empty, Jinja2 syntax, a variable not declared for it, too long for the SMS budget."""
    if name not in ALL:
        raise TemplateRefused([f"no template named {name!r} (没有该模板)"])
    if not source.strip():
        raise TemplateRefused(["the template is empty (模板内容不能为空)"])
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateRefused([f"the template is longer than {MAX_SOURCE_CHARS} characters (模板过长)"])
    env = _environment()
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateRefused([f"Jinja2 syntax error on line {exc.lineno}: {exc.message} (模板语法错误)"]) from None
    allowed = {v.name for v in variables_of(name)}
    unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - allowed)
    if unknown:
        raise TemplateRefused([f"unknown variable(s) {', '.join(unknown)}; {name} may use "
                               f"{', '.join(sorted(allowed))} (模板使用了未定义的变量)"])
    try:
        text = env.from_string(source).render(**samples_of(name)).strip()
    except jinja2.TemplateError as exc:
        raise TemplateRefused([f"the template fails to render: {exc} (模板无法生成短信)"]) from None
    if budget and len(text) > MAX_CHARS:
        raise TemplateRefused([f"with the sample values the message has {len(text)} characters, over the budget of "
                               f"{MAX_CHARS} ({MAX_SEGMENTS} SMS segments of {SEGMENT_CHARS}) "
                               f"(短信超出{MAX_SEGMENTS}条计费长度)"])
    if not text:
        raise TemplateRefused(["the template renders an empty message (模板生成的短信为空)"])
    return text
