"""Admins: pairing weights and models paused from the arena (issue 11, items 5 and 6)."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/arena", tags=["admin"])
