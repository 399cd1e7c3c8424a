"""The inventory push: the channel levels a stock change marked (``push_marks``) are set in
the channel to Rappit's ``available``, as absolute figures, in the channel's batch size.

One ``inventory.push`` job per channel (``tasks``) goes round until no mark is left:

1. claim the channel's marks (``claimed_by`` = the job id). A mark another job holds is left
   to it; a retry of this job takes its own claims back.
2. plan: each claimed mark's channel level (inventory item at a location), Rappit's available
   and the channel's figure as last known.
3. skip what needs nothing: the channel already shows that figure; the location is mastered by
   the channel (never pushed); the SKU is no longer listed.
4. push the rest through the channel's ``InventoryTarget``, recording after each batch what the
   channel now shows (a crash after a batch does not push it again: the figures match).
5. settle: remove the marks still at the version claimed, release those changed meanwhile, and
   go round again for them. A push never waits for a mark a stock transaction holds (that
   could deadlock); such a claim is released later, alone in its own transaction.

Channels know nothing of this module's tables: a target gets levels and answers what it set,
what it read and what the channel refused. Which target serves which channel type is wired in
``rappit.wiring`` (the domain imports no integration).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.inventory.push_marks import request_push
from rappit.inventory.push_repository import LevelKey, PlannedLevel, PushRepository
from rappit.inventory.tasks import DEFAULT_CLAIM_TIMEOUT_S
from rappit.kit.db import unit_of_work
from rappit.models import Channel, ChannelStatus, StockMaster
from rappit.queues.worker import Handler, JobContext, PermanentJobError

logger = logging.getLogger(__name__)

# Marks taken per round, and rounds per job: a job that still finds marks after its last
# round asks for another job instead of running forever.
CLAIM_LIMIT = 10_000
MAX_ROUNDS = 10


@dataclass(frozen=True)
class LevelPush:
    """Set ``quantity`` as the level's available; ``known`` is the channel's figure as last
    known (the compare value), None when nothing is known yet."""

    inventory_item_id: str
    location_id: str
    quantity: int
    known: int | None

    @property
    def key(self) -> LevelKey:
        return (self.inventory_item_id, self.location_id)


@dataclass
class PushResult:
    # Levels the channel now shows at the quantity this push set.
    pushed: dict[LevelKey, int] = field(default_factory=dict)
    # Figures read from the channel on the way (some already matched: nothing to set).
    seen: dict[LevelKey, int] = field(default_factory=dict)
    # Levels the channel refused, with its reason: not tried again until the next change.
    refused: dict[LevelKey, str] = field(default_factory=dict)
    # API calls made, and how many of them the channel refused for a stale compare value.
    calls: int = 0
    stale: int = 0


class InventoryTarget(Protocol):
    """A channel's side of the push (``rappit.integrations.shopify.inventory_push``)."""

    @property
    def batch_size(self) -> int: ...

    async def push(
        self, levels: Sequence[LevelPush], *, reference: str, operation_id: str
    ) -> PushResult:
        """Set these levels (at most ``batch_size``). ``operation_id`` names this batch of
        this job: the same id with the same levels is the same operation (a retry)."""
        ...


TargetFactory = Callable[[Channel], AbstractAsyncContextManager[InventoryTarget]]


class InventoryTargets:
    """Which target pushes to which channel type."""

    def __init__(self) -> None:
        self._factories: dict[str, TargetFactory] = {}

    def register(self, channel_type: str, factory: TargetFactory) -> None:
        self._factories[channel_type] = factory

    def get(self, channel_type: str) -> TargetFactory | None:
        return self._factories.get(channel_type)


class ChannelPush:
    """One job's push to one channel."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        channel: Channel,
        claimant: str,
        *,
        claim_timeout_s: int = DEFAULT_CLAIM_TIMEOUT_S,
        claim_limit: int = CLAIM_LIMIT,
        max_rounds: int = MAX_ROUNDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.organization_id = channel.organization_id
        self.channel_id = channel.id
        self.claimant = claimant
        self.claim_timeout_s = claim_timeout_s
        self.claim_limit = claim_limit
        self.max_rounds = max_rounds
        self.counts: Counter[str] = Counter()
        # When the claims were last renewed (a long push renews them as it goes).
        self.touched = time.monotonic()

    def _repository(self, session: AsyncSession) -> PushRepository:
        return PushRepository(session, self.organization_id, self.channel_id, self.claimant)

    async def run(self, target: InventoryTarget) -> dict[str, int]:
        for round_number in range(self.max_rounds):
            async with unit_of_work(self.sessionmaker) as session:
                claimed = await self._repository(session).claim(
                    limit=self.claim_limit, claim_timeout_s=self.claim_timeout_s
                )
            if not claimed and not await self._release_leftovers():
                return dict(self.counts)
            if not claimed:
                continue
            self.counts["rounds"] += 1
            self.counts["claimed"] += len(claimed)
            async with self.sessionmaker() as session:
                planned = await self._repository(session).plan(claimed)
            self.touched = time.monotonic()
            await self._push(target, self._levels_to_push(planned), round_number)
            async with unit_of_work(self.sessionmaker) as session:
                self.counts["cleared"] += await self._repository(session).settle(claimed)
        # Changes kept coming for every round: another job goes on with them.
        async with unit_of_work(self.sessionmaker) as session:
            request_push(session, self.organization_id, {self.channel_id})
        logger.info(
            "inventory push of channel %s: marks left after %d rounds; a new job goes on",
            self.channel_id,
            self.max_rounds,
        )
        return dict(self.counts)

    async def _release_leftovers(self) -> int:
        """Claims the last settle could not release because a stock transaction held them:
        released one by one now (each waits for that transaction), to be claimed again."""
        async with self.sessionmaker() as session:
            leftovers = await self._repository(session).leftovers()
        for key in leftovers:
            async with unit_of_work(self.sessionmaker) as session:
                await self._repository(session).release(key)
        return len(leftovers)

    def _levels_to_push(self, planned: list[PlannedLevel]) -> list[LevelPush]:
        levels: dict[LevelKey, LevelPush] = {}
        for row in planned:
            if row.stock_master != StockMaster.RAPPIT:
                # The channel is the stock master here now: it is never pushed to.
                self.counts["channel_master"] += 1
            elif row.inventory_item_id is None:
                self.counts["unlisted"] += 1
            elif row.known == row.available:
                self.counts["unchanged"] += 1
            else:
                level = LevelPush(row.inventory_item_id, row.location_id, row.available, row.known)
                levels[level.key] = level
        return list(levels.values())

    async def _push(self, target: InventoryTarget, levels: list[LevelPush], round_: int) -> None:
        size = max(target.batch_size, 1)
        for index, start in enumerate(range(0, len(levels), size)):
            result = await target.push(
                levels[start : start + size],
                reference=f"rappit://inventory-push/{self.claimant}",
                operation_id=f"{self.claimant}.{round_}.{index}",
            )
            async with unit_of_work(self.sessionmaker) as session:
                repository = self._repository(session)
                await repository.record(result.pushed, result.seen)
                if time.monotonic() - self.touched > self.claim_timeout_s / 4:
                    await repository.touch_claims()
                    self.touched = time.monotonic()
            self.counts["pushed"] += len(result.pushed)
            self.counts["refused"] += len(result.refused)
            self.counts["calls"] += result.calls
            self.counts["stale"] += result.stale
            for (item_id, location_id), reason in sorted(result.refused.items()):
                logger.warning(
                    "inventory push to channel %s: item %s at location %s refused: %s",
                    self.channel_id,
                    item_id,
                    location_id,
                    reason,
                )

    async def drop(self) -> int:
        async with unit_of_work(self.sessionmaker) as session:
            return await self._repository(session).drop()


def push_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    targets: InventoryTargets,
    *,
    claim_timeout_s: int = DEFAULT_CLAIM_TIMEOUT_S,
) -> Handler:
    async def handle(context: JobContext) -> dict[str, int]:
        try:
            organization_id = uuid.UUID(str(context.data["organization_id"]))
            channel_id = uuid.UUID(str(context.data["channel_id"]))
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"job data is not a channel reference: {exc}") from exc
        async with sessionmaker() as session:
            channel = await session.scalar(
                select(Channel).where(
                    Channel.organization_id == organization_id, Channel.id == channel_id
                )
            )
        if channel is None:
            return {"claimed": 0}  # deleted, and its marks with it
        push = ChannelPush(sessionmaker, channel, context.job_id, claim_timeout_s=claim_timeout_s)
        factory = targets.get(channel.type)
        if channel.status != ChannelStatus.ACTIVE or factory is None:
            dropped = await push.drop()
            logger.info(
                "inventory push: channel %s is %s (%s); %d mark(s) dropped",
                channel.id,
                channel.status,
                channel.type,
                dropped,
            )
            return {"dropped": dropped}
        async with factory(channel) as target:
            return await push.run(target)

    return handle
