"""Who may use the web pages: users (argon2id passwords), sessions (random tokens with a TTL) and roles.

Redis keys: ``ivr:user:<username>`` (JSON: username, password_hash, role, agent_id, name), ``ivr:users``
(a set of usernames), ``ivr:session:<token>`` (JSON: username, expires_at; expires with the session) and
``ivr:login:failures:<username>`` (a counter that slows down password guessing).

The rules the routes rely on: a request without a valid session is 401 (sign in again), a signed-in
user without the role is 403; a bad password and an unknown user get the same 401 message, and take
about the same time, so the login form does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, model_validator

from ivr.records.redis_text import texts

log = logging.getLogger(__name__)

USERS_SET = "ivr:users"
#: Failed logins per username before a pause, and how long the pause (and the count) lasts.
MAX_LOGIN_FAILURES = 10
LOGIN_FAILURE_WINDOW_S = 300
#: Bad credentials: one message for an unknown user and a wrong password (no user enumeration).
BAD_CREDENTIALS = "wrong username or password"


class UserRole(enum.StrEnum):
    """What a web user may do."""

    AGENT = "agent"
    """A desk agent: their own presence, their own screen pops, dispositions of their calls."""
    FIELD = "field"
    """A field manager (mobile): as an agent."""
    SUPERVISOR = "supervisor"
    """The wall, every agent's presence, every pop."""
    ADMIN = "admin"
    """As a supervisor (and manages users from the command line)."""
    TRAINER = "trainer"
    """Labels failed turns on the trainer's page (/trainer) and reads the navigation reports."""
    QA = "qa"
    """Quality assurance: searches and plays call recordings (/qa), puts calls under legal hold."""


#: Roles that take calls, hence need an agent id of the directory.
CALL_TAKERS = frozenset({UserRole.AGENT, UserRole.FIELD})
#: Roles that watch others.
SUPERVISING = frozenset({UserRole.SUPERVISOR, UserRole.ADMIN})


class User(BaseModel):
    """A web user as stored in Redis."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password_hash: str = Field(min_length=1, description="argon2id, PHC string")
    role: UserRole
    agent_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    """The directory's agent this user signs in as (agents and field managers must have one)."""
    name: str = ""

    @model_validator(mode="after")
    def _call_takers_have_an_agent(self) -> User:
        if self.role in CALL_TAKERS and not self.agent_id:
            raise ValueError(f"role {self.role.value} needs an agent id (--agent)")
        return self

    def public(self) -> dict[str, Any]:
        """What the API shows of a user (never the hash)."""
        return {"username": self.username, "role": self.role.value, "agent_id": self.agent_id, "name": self.name}


class Session(BaseModel):
    """A signed-in user's session, as stored under its token."""

    username: str
    expires_at: float


class LoginThrottled(Exception):
    """Too many failed logins for a username: wait before trying again."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UserStore:
    """Users, their passwords and sessions in Redis.

    Password hashing is deliberately slow (argon2id, 64 MiB): it runs in a worker thread so the
    controller's event loop (which carries calls' audio) never waits for it, and at most two at a
    time so a burst of logins cannot take the machine's memory.
    """

    def __init__(self, redis: aioredis.Redis, session_ttl_s: int = 8 * 3600,
                 hasher: PasswordHasher | None = None) -> None:
        self.redis = redis
        self.session_ttl_s = session_ttl_s
        self.hasher = hasher or PasswordHasher()
        self._hashing = asyncio.Semaphore(2)
        self._dummy_hash: str | None = None

    # --- users

    async def add(self, username: str, password: str, role: UserRole | str, agent_id: str | None = None,
                  name: str = "") -> User:
        """Create the user, or replace them (a new password, role or agent); returns the stored user."""
        if len(password) < 8:
            raise ValueError("password: at least 8 characters")
        user = User(username=username, password_hash=await self._hash(password), role=UserRole(role),
                    agent_id=agent_id or None, name=name or username)
        await self.put(user)
        return user

    async def put(self, user: User) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"ivr:user:{user.username}", user.model_dump_json())
            pipe.sadd(USERS_SET, user.username)
            await pipe.execute()

    async def get(self, username: str) -> User | None:
        raw = await self.redis.get(f"ivr:user:{username}")
        return User.model_validate_json(raw) if raw else None

    async def all(self) -> list[User]:
        names = sorted(texts(await self.redis.smembers(USERS_SET)))
        if not names:
            return []
        raws = await self.redis.mget([f"ivr:user:{n}" for n in names])
        return [User.model_validate_json(raw) for raw in raws if raw]

    async def verify(self, username: str, password: str) -> User | None:
        """The user if the password is theirs, else None (unknown or wrong: the caller cannot tell which).

        Raises LoginThrottled after MAX_LOGIN_FAILURES failures in LOGIN_FAILURE_WINDOW_S.
        """
        failures_key = f"ivr:login:failures:{username}"
        failures = int(await self.redis.get(failures_key) or 0)
        if failures >= MAX_LOGIN_FAILURES:
            raise LoginThrottled(max(1, int(await self.redis.ttl(failures_key))))
        user = await self.get(username)
        # An unknown user still costs one verification: the response time does not tell who exists.
        ok = await self._verify(user.password_hash if user else await self._dummy(), password)
        if user is None or not ok:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, LOGIN_FAILURE_WINDOW_S)
                await pipe.execute()
            return None
        await self.redis.delete(failures_key)
        if self.hasher.check_needs_rehash(user.password_hash):
            # Parameters were raised since this hash was made: store it again at today's cost.
            user = user.model_copy(update={"password_hash": await self._hash(password)})
            await self.put(user)
        return user

    async def password_matches(self, user: User, password: str) -> bool:
        """Whether ``password`` is ``user``'s, without counting a failed sign-in (for tools that set passwords)."""
        return await self._verify(user.password_hash, password)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        async with self._hashing:
            try:
                return await asyncio.to_thread(self.hasher.verify, password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    # --- sessions

    async def open_session(self, user: User) -> tuple[str, float]:
        """A new session for ``user``: (token, expires_at)."""
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self.session_ttl_s
        session = Session(username=user.username, expires_at=expires_at)
        await self.redis.set(f"ivr:session:{token}", session.model_dump_json(), ex=self.session_ttl_s)
        return token, expires_at

    async def session_user(self, token: str) -> User | None:
        """The user of a live session; None when the token is unknown or expired, or the user was removed."""
        if not token or len(token) > 128:
            return None
        raw = await self.redis.get(f"ivr:session:{token}")
        if not raw:
            return None
        session = Session.model_validate_json(raw)
        if session.expires_at <= time.time():  # Redis expires the key too; this covers a clock at the edge
            return None
        return await self.get(session.username)

    async def close_session(self, token: str) -> None:
        await self.redis.delete(f"ivr:session:{token}")


# --- FastAPI: the session user, by role

_bearer = HTTPBearer(auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def session_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The signed-in user of this request, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("sign in first: send Authorization: Bearer <token> (POST /api/login)")
    users: UserStore = request.app.state.users
    user = await users.session_user(credentials.credentials)
    if user is None:
        raise _unauthorized("session expired or unknown: sign in again")
    request.state.token = credentials.credentials
    return user


def require(*roles: UserRole) -> Callable[..., Awaitable[User]]:
    """A dependency returning the session user if they have one of ``roles`` (any role if none given); else 403."""
    allowed = frozenset(roles)

    async def dependency(user: Annotated[User, Depends(session_user)]) -> User:
        if allowed and user.role not in allowed:
            wanted = " or ".join(sorted(r.value for r in allowed))
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {wanted} role; you are {user.role.value}")
        return user

    return dependency
