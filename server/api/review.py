"""Admins: the review queue of votes held by the anomaly rules (issue 11, item 8)."""

from fastapi import APIRouter

router = APIRouter(prefix="/admin/arena", tags=["admin"])
