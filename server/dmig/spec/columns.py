"""Column definitions in a spec and their rendering as SQLAlchemy columns."""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from dmig.errors import InvalidInput
from dmig.spec.sqltypes import check_type, parse_type


def _ident(value: str) -> str:
    from dmig.spec.context import check_identifier

    try:
        return check_identifier(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


Ident = Annotated[
    str,
    Field(min_length=1, max_length=128, description="A table/column/index name; always quoted by the dialect."),
    AfterValidator(_ident),
]
TypeName = Annotated[
    str,
    Field(
        description="Column type: smallint, integer, bigint, text, varchar(n), char(n), numeric(p,s), boolean, "
        "real, double, date, time, timestamp, timestamptz, json, jsonb, uuid, bytea."
    ),
    AfterValidator(check_type),
]
DefaultFunction = Literal["current_timestamp", "current_date", "uuid", "random"]
VOLATILE_DEFAULTS = {"uuid", "random"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnSpec(Strict):
    """A column to create."""

    name: Ident
    type: TypeName
    nullable: bool = Field(default=True, description="False = NOT NULL.")
    default: str | int | float | bool | None = Field(
        default=None, description="A constant default value (rendered as a literal)."
    )
    default_function: DefaultFunction | None = Field(
        default=None, description="A function default: current_timestamp, current_date, uuid (volatile), random."
    )
    primary_key: bool = False
    unique: bool = False
    autoincrement: bool = Field(default=False, description="Identity/AUTO_INCREMENT (primary key columns only).")

    @model_validator(mode="after")
    def _one_default(self) -> ColumnSpec:
        if self.default is not None and self.default_function is not None:
            raise ValueError("give 'default' or 'default_function', not both")
        if self.autoincrement and not self.primary_key:
            raise ValueError("autoincrement needs primary_key: true")
        return self

    @property
    def has_default(self) -> bool:
        return self.default is not None or self.default_function is not None

    @property
    def volatile_default(self) -> bool:
        return self.default_function in VOLATILE_DEFAULTS

    def sa_type(self) -> sa.types.TypeEngine:
        return parse_type(self.type)

    def server_default(self, dialect: str) -> sa.schema.DefaultClause | None:
        if self.default_function is not None:
            return sa.DefaultClause(default_function_sql(self.default_function, dialect))
        if self.default is None:
            return None
        value = self.default
        if isinstance(value, bool):
            return sa.DefaultClause(sa.true() if value else sa.false())
        if isinstance(value, int | float):
            return sa.DefaultClause(sa.literal_column(repr(value)))
        return sa.DefaultClause(sa.literal(value, sa.String()))

    def to_sa(self, dialect: str, *, nullable: bool | None = None, with_default: bool = True) -> sa.Column:
        kwargs: dict = {}
        if self.autoincrement:
            kwargs["autoincrement"] = True
        elif self.primary_key:
            kwargs["autoincrement"] = False
        return sa.Column(
            self.name,
            self.sa_type(),
            nullable=self.nullable if nullable is None else nullable,
            primary_key=self.primary_key,
            server_default=self.server_default(dialect) if with_default else None,
            unique=self.unique or None,
            **kwargs,
        )


def default_function_sql(fn: str, dialect: str) -> sa.ColumnElement:
    if fn == "current_timestamp":
        return sa.text("CURRENT_TIMESTAMP")
    if fn == "current_date":
        return sa.text("(CURRENT_DATE)") if dialect != "postgresql" else sa.text("CURRENT_DATE")
    if fn == "uuid":
        if dialect == "postgresql":
            return sa.text("gen_random_uuid()")
        if dialect == "mysql":
            return sa.text("(uuid())")
        raise InvalidInput("SQLite has no uuid() default; generate ids in the application or use a backfill")
    if dialect == "postgresql":
        return sa.text("random()")
    return sa.text("(rand())") if dialect == "mysql" else sa.text("(random())")
