"""JSON API for the pictures in posts: upload one, then write `![alt](url)` in the Markdown."""

from fastapi import APIRouter, Depends, HTTPException, UploadFile, status
from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

import models
from auth import CurrentUser, release_connection
from config import settings
from database import SessionDep
from images import RETRY_AFTER_SECONDS, InvalidImage, PostImage, ProcessingBusy, process_post_image
from ratelimit import post_image_limit
from routers.users import read_upload
from schemas import Detail, PostImageResponse, errors
from storage import StorageError, delete_post_image_quietly, get_storage, new_post_image_key

# Every route here reads the database: when it is down, a 503 (errors.py).
router = APIRouter(prefix="/api/posts", tags=["posts"], responses=errors(503))

USER_ID = bindparam("user_id", type_=Integer)
BYTES_USED = select(func.coalesce(func.sum(models.PostImage.size_bytes), 0)).where(
    models.PostImage.user_id == USER_ID
)
LOCK_USER = select(models.User.id).where(models.User.id == USER_ID).with_for_update()


@router.post(
    "/images",
    response_model=PostImageResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 413, 429),
    dependencies=[Depends(post_image_limit)],
)
async def upload_post_image(
    file: UploadFile, user: CurrentUser, db: SessionDep
) -> PostImageResponse:
    """Upload a picture for a post (JPEG, PNG, GIF or WebP): stored as WebP at most 1600 px
    wide, without its metadata; write it in a post as `![alt](url)`. Each account may store
    POST_IMAGE_QUOTA_BYTES of them."""
    # A full quota is refused before any decoding; the upload's own size is counted below.
    if await bytes_used(db, user.id) >= settings.post_image_quota_bytes:
        raise quota_exceeded()
    await release_connection(db)  # decoding and storing hold no connection
    image = await processed(await read_upload(file))
    key = new_post_image_key()
    try:
        await get_storage().save(key, image.data, "image/webp")
    except StorageError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, Detail.UPLOAD_FAILED) from None
    try:
        await count_against_quota(db, user.id, key, image)
    except Exception:
        await delete_post_image_quietly(key)  # no row counts it: nothing may point at it
        raise
    return PostImageResponse(url=get_storage().url(key), width=image.width, height=image.height)


async def bytes_used(db: AsyncSession, user_id: int) -> int:
    """What the account's pictures for posts take in storage."""
    used: int | None = await db.scalar(BYTES_USED, {"user_id": user_id})
    return used or 0


async def processed(data: bytes) -> PostImage:
    """The upload as a post's picture (images.py); 400 for what is no image we accept, 503
    when the image slots are taken."""
    try:
        return await process_post_image(data)
    except InvalidImage:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=Detail.INVALID_IMAGE) from None
    except ProcessingBusy:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Detail.IMAGES_BUSY,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None


async def count_against_quota(db: AsyncSession, user_id: int, key: str, image: PostImage) -> None:
    """Record the stored picture under its uploader's quota, or refuse it past the quota.

    The user's row is locked first: two uploads of one account are counted one after the
    other, each seeing the other's row, so together they cannot pass the quota.
    """
    if await db.scalar(LOCK_USER, {"user_id": user_id}) is None:  # the account is gone
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=Detail.NOT_AUTHENTICATED)
    size = len(image.data)
    if await bytes_used(db, user_id) + size > settings.post_image_quota_bytes:
        await db.rollback()
        raise quota_exceeded()
    db.add(
        models.PostImage(
            user_id=user_id, key=key, size_bytes=size, width=image.width, height=image.height
        )
    )
    await db.commit()


def quota_exceeded() -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=Detail.IMAGE_QUOTA_EXCEEDED)
