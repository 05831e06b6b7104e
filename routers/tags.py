"""JSON API for tags."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

import models
from caching import CACHED
from database import ReadDep
from queries import visible_to
from schemas import Detail, TagCount, errors, normalize_tag

router = APIRouter(prefix="/api/tags", tags=["tags"], responses=errors(503))

MAX_TAGS_LISTED = 100

_tags = select(func.unnest(models.Post.tags).label("name")).where(visible_to(None)).subquery()
_count = func.count().label("count")
TAG_COUNTS = (
    select(_tags.c.name, _count).group_by(_tags.c.name).order_by(_count.desc(), _tags.c.name)
)


async def fetch_tag_counts(
    db: AsyncConnection | AsyncSession, limit: int | None = MAX_TAGS_LISTED
) -> list[TagCount]:
    """The tags of published posts with how many use each, most used first, then by name: the
    `limit` first (the API's), or every one (the /tags page)."""
    rows = (await db.execute(TAG_COUNTS.limit(limit))).all()
    return [TagCount(name=name, count=count) for name, count in rows]


@router.get("", response_model=list[TagCount], dependencies=[CACHED])
async def list_tags(db: ReadDep) -> list[TagCount]:
    """The tags of published posts with how many use each: most used first, then by name."""
    return await fetch_tag_counts(db)


def tag_or_404(name: str) -> str:
    """The `{name}` of a tag's page or feed, normalised; a name no tag can have is a 404."""
    try:
        return normalize_tag(name)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=Detail.TAG_NOT_FOUND) from None


TagName = Annotated[str, Depends(tag_or_404)]
