"""Shared phases of the operations built on two-way sync triggers (rename, merge, type change)."""

from __future__ import annotations

from typing import ClassVar

import sqlalchemy as sa

from dmig.spec.context import OpContext
from dmig.spec.ddl import brief_alter_lock
from dmig.spec.ops.base import TableOp
from dmig.spec.ops.common import add_columns_step, drop_columns_step
from dmig.spec.steps import BackfillPlan, Step, ValidationCheck
from dmig.spec.sync import Sync, create_triggers_step, drop_triggers_sql, sync_backfill, sync_checks


class SyncOperation(TableOp):
    """expand = add the new columns (nullable) + sync triggers; backfill = forward(old) by key range;
    validate = no row still inconsistent; contract = drop triggers and old columns; rollback = undo expand."""

    roundtrip_check: ClassVar[bool] = False

    def sync(self, ctx: OpContext) -> Sync:  # pragma: no cover - abstract
        raise NotImplementedError

    def new_columns(self, ctx: OpContext) -> list[sa.Column]:  # pragma: no cover - abstract
        raise NotImplementedError

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        s = self.sync(ctx)
        return [
            add_columns_step(
                ctx,
                make,
                self.table,
                self.schema_,
                self.new_columns(ctx),
                rollback_id=f"op{ctx.index}.rollback.2.drop_columns",
                description=f"Add nullable {', '.join(s.new)} to {self.table}",
            ),
            create_triggers_step(ctx, make, s, f"op{ctx.index}.rollback.1.drop_triggers"),
        ]

    def backfill(self, ctx: OpContext) -> BackfillPlan:
        s = self.sync(ctx)
        return sync_backfill(ctx, s, f"op{ctx.index}.backfill.{'_'.join(s.new)}")

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return sync_checks(ctx, self.sync(ctx), roundtrip=self.roundtrip_check)

    def drop_old_step(self, ctx: OpContext, make, *, extra_sql: list[str] | None = None) -> Step:
        s = self.sync(ctx)
        return drop_columns_step(
            ctx,
            make,
            "drop_old",
            self.table,
            self.schema_,
            s.old,
            description=f"Drop the sync triggers and {', '.join(s.old)}",
            destructive=True,
            prefix_sql=drop_triggers_sql(ctx, s),
            extra_sql=extra_sql,
            app=f"no code may read or write {', '.join(s.old)} any more",
        )

    def contract(self, ctx: OpContext) -> list[Step]:
        return [self.drop_old_step(ctx, self.maker(ctx, "contract"))]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return self.rollback_steps(ctx, self.maker(ctx, "rollback"))

    def rollback_steps(self, ctx: OpContext, make) -> list[Step]:
        s = self.sync(ctx)
        return [
            make(
                "drop_triggers",
                description="Drop the sync triggers",
                sql=drop_triggers_sql(ctx, s),
                **brief_alter_lock(ctx),
            ),
            drop_columns_step(
                ctx,
                make,
                "drop_columns",
                self.table,
                self.schema_,
                s.new,
                description=f"Drop {', '.join(s.new)} (the old columns still hold every value)",
                destructive=False,
            ),
        ]
