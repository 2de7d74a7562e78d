"""The validation rule spec: what a user (or the migration planner) writes in a rules file.

The spec is data, never SQL: tables and columns are identifiers that are quoted by the dialect,
row filters are structured ``{column, op, value}`` triples and column mappings use a small
declarative expression language (``expr.py``). That keeps a rules file safe to accept from an
agent and portable across SQLite, PostgreSQL and MySQL/MariaDB.

``python -m dmig.validate.spec`` rewrites ``schemas/validation-rules.schema.json`` from these
models; a test asserts the committed file equals the models' schema so the two never drift.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

SCHEMA_FILE = "validation-rules.schema.json"
SCHEMA_ID = "https://agileflow.dev/schemas/dmig/validation-rules.schema.json"


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt option must never silently weaken a check."""

    model_config = ConfigDict(extra="forbid")


def _identifier(value: str) -> str:
    if "\x00" in value:
        raise ValueError("identifiers cannot contain a NUL character")
    if value != value.strip():
        raise ValueError("identifiers cannot start or end with whitespace")
    return value


Ident = Annotated[
    str,
    Field(min_length=1, max_length=128, description="A table or column name, used verbatim and quoted by the dialect."),
    AfterValidator(_identifier),
]
Scalar = bool | int | float | datetime | date | str | None
Severity = Literal["error", "warning"]
Side = Literal["source", "target"]

# ---------------------------------------------------------------------------------------------- filters

FilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null", "between"]


class Filter(_Strict):
    """One row condition; a check's ``where`` list is ANDed. Never raw SQL."""

    column: Ident
    op: FilterOp = Field(description="Comparison operator.")
    value: Scalar | list[Scalar] = Field(
        default=None, description="A scalar; a list for in/not in; [low, high] for between; omitted for is (not) null."
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> Filter:
        v = self.value
        if self.op in ("is null", "is not null"):
            if v is not None:
                raise ValueError(f"op '{self.op}' takes no value")
        elif self.op in ("in", "not in"):
            if not isinstance(v, list) or not v:
                raise ValueError(f"op '{self.op}' needs a non-empty list value")
        elif self.op == "between":
            if not isinstance(v, list) or len(v) != 2 or None in v:
                raise ValueError("op 'between' needs a value [low, high]")
        elif v is None or isinstance(v, list):
            raise ValueError(f"op '{self.op}' needs one non-null scalar value (use 'is null' to test for NULL)")
        return self


Where = Annotated[list[Filter], Field(default_factory=list, description="Row filters, ANDed together.")]

# ---------------------------------------------------------------------------------------------- expressions


class Lit(_Strict):
    lit: Scalar = Field(description="A literal value (a bare string is a column name; literals need {lit: ...}).")


class Concat(_Strict):
    concat: list[Expr] = Field(min_length=1, description="Concatenation; NULL parts count as empty strings.")


class Coalesce(_Strict):
    coalesce: list[Expr] = Field(min_length=1, description="The first non-NULL argument.")


class Lower(_Strict):
    lower: Expr


class Upper(_Strict):
    upper: Expr


class Trim(_Strict):
    trim: Expr = Field(description="Strip leading and trailing spaces.")


class SplitPartArgs(_Strict):
    column: Expr = Field(description="The text to split (a column name or an expression).")
    sep: str = Field(min_length=1, description="The separator (literal text, not a regex).")
    index: int = Field(ge=1, le=1000, description="Which part, 1-based. Past the last part the result is ''.")
    rest: bool = Field(default=False, description="Return this part and everything after it (e.g. a last name).")


class SplitPart(_Strict):
    split_part: SplitPartArgs


class SubstrArgs(_Strict):
    column: Expr
    start: int = Field(ge=1, description="1-based start character.")
    length: int | None = Field(default=None, ge=0)


class Substr(_Strict):
    substr: SubstrArgs


class ReplaceArgs(_Strict):
    column: Expr
    old: str = Field(min_length=1)
    new: str


class Replace(_Strict):
    replace: ReplaceArgs


CastTarget = Literal["text", "integer", "numeric", "date", "timestamp", "boolean"]


class CastArgs(_Strict):
    column: Expr
    to: CastTarget


class Cast(_Strict):
    cast: CastArgs


Expr = Annotated[
    Union[Ident, Lit, Concat, Coalesce, Lower, Upper, Trim, SplitPart, Substr, Replace, Cast],  # noqa: UP007
    Field(description="A column name, or a declarative expression such as {concat: [a, {lit: ' '}, b]}."),
]
for _m in (Concat, Coalesce, Lower, Upper, Trim, SplitPartArgs, SubstrArgs, ReplaceArgs, CastArgs):
    _m.model_rebuild()

# ---------------------------------------------------------------------------------------------- scalar helpers

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '7d', '1w', or combinations such as '1d12h'."""
    m = _DURATION.match(text.strip().lower())
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 7d, 1w or 1d12h)")
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _bound(value: Any) -> Any:
    """ISO strings become dates or timestamps so they compare as such, not as text."""
    if isinstance(value, str):
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                return parse(value.strip())
            except ValueError:
                continue
        raise ValueError(f"not a number, ISO date or ISO timestamp: {value!r}")
    return value


Bound = Annotated[int | float | datetime | date, BeforeValidator(_bound)]


@dataclass(frozen=True)
class TypeSpec:
    """A parsed ``castable_to`` type."""

    kind: str
    precision: int | None = None
    scale: int | None = None


_TYPE = re.compile(r"^\s*([a-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")
_TYPE_ALIASES = {"int": "integer", "decimal": "numeric", "bool": "boolean", "datetime": "timestamp", "jsonb": "json"}
_PLAIN_TYPES = {"smallint", "integer", "bigint", "date", "timestamp", "boolean", "uuid", "json"}


def parse_type(text: str) -> TypeSpec:
    m = _TYPE.match(text.lower())
    if not m:
        raise ValueError(f"not a type: {text!r}")
    kind = _TYPE_ALIASES.get(m[1], m[1])
    p, s = (int(m[2]) if m[2] else None), (int(m[3]) if m[3] else None)
    if kind in _PLAIN_TYPES and p is None:
        return TypeSpec(kind)
    if kind == "numeric" and p is not None and 1 <= p <= 65 and (s or 0) <= p:
        return TypeSpec(kind, p, s or 0)
    if kind == "varchar" and p is not None and s is None and p >= 1:
        return TypeSpec(kind, p)
    raise ValueError(
        f"unsupported type {text!r}: use smallint, integer, bigint, numeric(p,s), varchar(n), date, timestamp, "
        "boolean, uuid or json"
    )


def _check_type(text: str) -> str:
    parse_type(text)
    return text.strip().lower()


def _check_regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return text


# ---------------------------------------------------------------------------------------------- checks


class Tolerance(_Strict):
    """Allowed difference: the larger of ``absolute`` rows and ``percent`` of the source count."""

    absolute: int | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)

    def allowed(self, source_count: int) -> int:
        by_pct = int(source_count * (self.percent or 0) / 100)
        return max(self.absolute or 0, by_pct)


class Defaults(_Strict):
    sample_size: int = Field(default=10, ge=0, le=1000, description="Offending rows returned per check.")
    spot_rows: int = Field(default=20, ge=0, le=10000, description="Random rows compared per spot check.")
    seed: int = Field(default=0, description="Seed of the spot checks' random sample (same seed, same rows).")
    tolerance: Tolerance = Field(default_factory=Tolerance, description="Default row_count tolerance (exact).")
    statement_timeout_s: float = Field(default=30.0, gt=0, le=86400, description="Per-query timeout, seconds.")
    max_value_chars: int = Field(default=200, ge=8, le=100000, description="Longer sample values are truncated.")
    parallelism: int = Field(default=2, ge=1, le=16, description="Checks run at once (connections per database).")
    source_schema: Ident | None = Field(default=None, description="Schema of source tables (PostgreSQL).")
    target_schema: Ident | None = Field(default=None, description="Schema of target tables (PostgreSQL).")


class _Check(_Strict):
    name: str | None = Field(default=None, max_length=200, description="Unique label; generated when omitted.")
    severity: Severity = Field(default="error", description="A failing 'warning' check does not fail the run.")
    description: str | None = Field(default=None, max_length=2000)


class _OneTable(_Check):
    on: Side = Field(default="target", description="Which database the check runs against.")
    table: Ident
    schema_: Ident | None = Field(default=None, alias="schema", description="Schema (defaults per side).")
    where: Where

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _TablePair(_Strict):
    """A table on both sides, possibly renamed by the migration."""

    table: Ident | None = Field(default=None, description="Table name on both sides (unless renamed).")
    source_table: Ident | None = None
    target_table: Ident | None = None

    @model_validator(mode="after")
    def _names(self) -> _TablePair:
        if not (self.table or (self.source_table and self.target_table)):
            raise ValueError("give 'table', or both 'source_table' and 'target_table'")
        return self

    @property
    def source_name(self) -> str:
        return self.source_table or self.table  # type: ignore[return-value]

    @property
    def target_name(self) -> str:
        return self.target_table or self.table  # type: ignore[return-value]

    @property
    def label(self) -> str:
        return _pair_label(self.source_name, self.target_name)


class RowCountTable(_TablePair):
    where: Where
    source_where: list[Filter] | None = Field(default=None, description="Overrides 'where' on the source.")
    target_where: list[Filter] | None = Field(default=None, description="Overrides 'where' on the target.")
    tolerance: Tolerance | None = None


def _pair_label(source: str, target: str) -> str:
    return target if source == target else f"{source} -> {target}"


def _cols(cols: list[str] | None) -> str:
    return ", ".join(cols or [])


class RowCountCheck(_Check):
    """Source and target row counts agree within a tolerance (one result per table)."""

    type: Literal["row_count"]
    tables: list[Ident | RowCountTable] = Field(min_length=1)
    tolerance: Tolerance | None = Field(default=None, description="Defaults to defaults.tolerance.")


class NotNullCheck(_OneTable):
    """No NULLs in these columns."""

    type: Literal["not_null"]
    columns: list[Ident] = Field(min_length=1)


class DataTypeCheck(_OneTable):
    """Every non-NULL value converts cleanly to a type, or matches a regex."""

    type: Literal["data_type"]
    column: Ident
    castable_to: Annotated[str, AfterValidator(_check_type)] | None = Field(
        default=None,
        description="smallint, integer, bigint, numeric(p,s), varchar(n), date, timestamp, boolean, uuid, json.",
    )
    pattern: Annotated[str, AfterValidator(_check_regex)] | None = Field(
        default=None, description="A regex every non-NULL value must match (unanchored unless you anchor it)."
    )
    case_insensitive: bool = Field(default=False, description="Match 'pattern' ignoring case.")

    @model_validator(mode="after")
    def _one_test(self) -> DataTypeCheck:
        if (self.castable_to is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'castable_to' or 'pattern'")
        return self


class OrphanedFkCheck(_Check):
    """Child rows whose (non-NULL) key has no parent row."""

    type: Literal["orphaned_fk"]
    on: Side = "target"
    schema_: Ident | None = Field(default=None, alias="schema")
    all_declared: bool = Field(default=False, description="Check every foreign key declared in the schema.")
    table: Ident | None = Field(default=None, description="The child table.")
    columns: list[Ident] | None = Field(default=None, description="The child's key columns.")
    parent_table: Ident | None = None
    parent_columns: list[Ident] | None = None
    parent_schema: Ident | None = None
    where: Where

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _shape(self) -> OrphanedFkCheck:
        explicit = (self.table, self.columns, self.parent_table, self.parent_columns)
        if self.all_declared:
            if any(x is not None for x in explicit) or self.where:
                raise ValueError("all_declared: true takes no table/columns/parent_*/where")
            return self
        if any(x is None for x in explicit):
            raise ValueError("give table, columns, parent_table and parent_columns (or all_declared: true)")
        if len(self.columns or []) != len(self.parent_columns or []) or not self.columns:
            raise ValueError("columns and parent_columns must be non-empty and of the same length")
        return self

    @property
    def label(self) -> str:
        return f"{self.table}({_cols(self.columns)}) -> {self.parent_table}({_cols(self.parent_columns)})"


class RangeCheck(_OneTable):
    """Values lie within [min, max] (inclusive; numbers or ISO dates/timestamps)."""

    type: Literal["range"]
    column: Ident
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        return self


class EnumCheck(_OneTable):
    """Values belong to an allowed set."""

    type: Literal["enum"]
    column: Ident
    values: list[Scalar] = Field(min_length=1)
    allow_null: bool = Field(default=True, description="When false, NULLs count as offending.")
    case_sensitive: bool = Field(default=True, description="Compare text byte for byte (also on MySQL collations).")


class UniqueCheck(_OneTable):
    """No two rows share the same key (counts duplicate key groups)."""

    type: Literal["unique", "duplicates"]
    columns: list[Ident] = Field(min_length=1)
    nulls_distinct: bool = Field(default=True, description="Rows with a NULL key part never collide (SQL rule).")


class FreshnessCheck(_OneTable):
    """The newest timestamp is no older than max_age (naive timestamps are taken as UTC)."""

    type: Literal["freshness"]
    column: Ident
    max_age: Annotated[str, AfterValidator(_check_duration)] = Field(description="e.g. 90s, 15m, 2h, 7d, 1d12h")
    reference: datetime | None = Field(default=None, description="Compare with this instant instead of now.")


class Recent(_Strict):
    column: Ident = Field(description="A source timestamp column: the newest rows by it are compared.")
    rows: int = Field(default=5, ge=1, le=1000)


class Comparison(_Strict):
    name: str = Field(min_length=1, max_length=200)
    source: Expr
    target: Expr


KeyValue = Scalar | list[Scalar]


class SpotCheck(_Check, _TablePair):
    """Compare sampled rows of source and target field by field (through a column mapping)."""

    type: Literal["spot_check"]
    source_schema: Ident | None = None
    target_schema: Ident | None = None
    key: list[Ident] = Field(min_length=1, description="Target key columns identifying a row.")
    source_key: list[Ident] | None = Field(default=None, description="Source key columns (default: same as key).")
    random: int | None = Field(default=None, ge=0, le=10000, description="Random rows (default defaults.spot_rows).")
    edges: bool = Field(default=True, description="Also compare the rows with the smallest and largest key.")
    edge_columns: list[Ident] = Field(default_factory=list, description="Source columns whose min/max rows to add.")
    recent: Recent | None = None
    keys: list[KeyValue] = Field(default_factory=list, description="Named keys (a value, or a list for a composite).")
    columns: dict[Ident, Expr] = Field(
        default_factory=dict, description="Mapping: target column <- source column or expression over source columns."
    )
    compare: list[Comparison] = Field(default_factory=list, description="Free comparisons of two expressions.")
    include_common: bool = Field(default=True, description="Also compare every column present on both sides.")
    exclude: list[Ident] = Field(default_factory=list, description="Target columns never compared.")
    where: Where = Field(description="Limits which source rows may be sampled.")
    max_mismatches: int | None = Field(default=None, ge=1, le=1000, description="Mismatching keys reported.")

    @model_validator(mode="after")
    def _shape(self) -> SpotCheck:
        if self.source_key is not None and len(self.source_key) != len(self.key):
            raise ValueError("source_key must have as many columns as key")
        for k in self.keys:
            width = len(k) if isinstance(k, list) else 1
            if width != len(self.key):
                raise ValueError(f"named key {k!r} does not have {len(self.key)} part(s)")
        return self


Check = Annotated[
    Union[  # noqa: UP007
        RowCountCheck,
        NotNullCheck,
        DataTypeCheck,
        OrphanedFkCheck,
        RangeCheck,
        EnumCheck,
        UniqueCheck,
        FreshnessCheck,
        SpotCheck,
    ],
    Field(discriminator="type"),
]


class ValidationSpec(_Strict):
    """A set of validation rules for one migration (source and target databases)."""

    model_config = ConfigDict(
        extra="forbid",
        title="dmig validation rules",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    version: Literal[1] = 1
    description: str | None = Field(default=None, max_length=4000)
    source: str | None = Field(default=None, description="Source database URL or env:VAR reference.")
    target: str | None = Field(default=None, description="Target database URL or env:VAR reference.")
    defaults: Defaults = Field(default_factory=Defaults)
    checks: list[Check] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ValidationSpec:
        names = [c.name for c in self.checks if c.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names must be unique: {', '.join(dupes)}")
        return self


def json_schema() -> dict[str, Any]:
    """The published schema (what the committed file must equal)."""
    return ValidationSpec.model_json_schema(by_alias=True)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the committed schema file (``--check`` only compares)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(__file__).resolve().parents[1] / "schemas" / SCHEMA_FILE
    text = schema_text()
    if "--check" in args:
        same = path.exists() and path.read_text(encoding="utf-8") == text
        print(f"{path}: {'up to date' if same else 'OUT OF DATE (run python -m dmig.validate.spec)'}")
        return 0 if same else 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
