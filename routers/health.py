"""Health checks for load balancers and orchestrators."""

from fastapi import APIRouter
from sqlalchemy import text

from database import SessionDep
from schemas import errors

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
async def liveness() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/ready", responses=errors(503))
async def readiness(db: SessionDep) -> dict[str, str]:
    """The process answers and the database does too."""
    await db.execute(text("SELECT 1"))
    return {"status": "ok"}
