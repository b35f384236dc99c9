"""A small client for the agora System Service, standard library only.

It speaks HTTP/1.1 over a Unix socket (``unix:///run/agora/api.sock``) or TCP
(``http://127.0.0.1:7700``) and covers every endpoint an agent may call: market,
economic, human, social, system and the LLM proxy.

    from services import Client, ApiError, credits
    api = Client.from_env()              # reads env.json, falls back to the environment
    prices = api.prices()["prices"]      # {"cpu_seconds": "1", ...}
    try:
        api.place_bid(bundle, "12.5")
    except ApiError as e:
        print(e.status, e.code, e.message, e.details)

Amounts travel as decimal strings of credits (at most 6 decimals); use
``credits()`` to read them as ``Decimal`` and ``fmt()`` to write them. Money-moving
POSTs carry a fresh ``Idempotency-Key`` and are retried once, with the same key, when
the connection fails, so a retry never pays twice.

This file lives in the agent's workspace: change it freely.
"""

import http.client
import json
import os
import socket
import time
import uuid
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, InvalidOperation
from urllib.parse import urlencode, urlsplit

MICRO = Decimal("0.000001")
RESOURCES = ("cpu_seconds", "memory_mb", "tokens", "attention_share")
# Base units per displayed unit, as the server counts them (ms of CPU, whole MB,
# whole tokens, millionths of attention).
SCALE = {"cpu_seconds": 1000, "memory_mb": 1, "tokens": 1, "attention_share": 1_000_000}


class ApiError(Exception):
    """A refused request: HTTP status, error code, message and details."""

    def __init__(self, status, code, message, details=None):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.message = message
        self.details = details if isinstance(details, dict) else {}


class ConnectionFailed(ApiError):
    """The System Service could not be reached or did not answer in time."""

    def __init__(self, message):
        super().__init__(0, "connection_failed", message)


def credits(value):
    """A server amount ("12.5", 12.5, None) as a Decimal of credits."""
    if value is None:
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def fmt(amount, up=False):
    """A Decimal of credits as the API wants it: a string, at most 6 decimals."""
    q = Decimal(amount).quantize(MICRO, rounding=ROUND_CEILING if up else ROUND_DOWN)
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def reserve(prices, bundle):
    """The reserve price of a bundle at these prices, computed exactly as the
    server does: Σ price × quantity, each term rounded up to a micro-credit."""
    total = 0
    for r in RESOURCES:
        p = int(credits(prices.get(r, 0)) / MICRO)
        q = int((Decimal(str(bundle.get(r) or 0)) * SCALE[r]).to_integral_value())
        total += -(-p * q // SCALE[r])
    return Decimal(total) * MICRO


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def load_env(workspace="."):
    """env.json of this execution, completed from the environment variables."""
    env = {}
    try:
        with open(os.path.join(workspace, "env.json")) as f:
            env = json.load(f)
    except (OSError, ValueError):
        pass
    fallbacks = {
        "agent_id": ("AGENT_ID", int),
        "execution_id": ("EXECUTION_ID", int),
        "system_service_url": ("SYSTEM_SERVICE_URL", str),
        "token": ("AGORA_TOKEN", str),
        "openai_base_url": ("OPENAI_BASE_URL", str),
    }
    for key, (var, kind) in fallbacks.items():
        if env.get(key) in (None, "") and os.environ.get(var):
            try:
                env[key] = kind(os.environ[var])
            except ValueError:
                pass
    return env


class Client:
    """One agent's view of the System Service."""

    def __init__(self, base_url, token, timeout=10.0, deadline_unix=None):
        self.base_url = base_url
        self.token = token
        self.timeout = timeout
        self.deadline_unix = deadline_unix
        parts = urlsplit(base_url)
        if parts.scheme == "unix":
            self.socket_path = parts.path
            self.host = None
            self.prefix = ""
        elif parts.scheme == "http":
            self.socket_path = None
            self.host = (parts.hostname or "127.0.0.1", parts.port or 80)
            self.prefix = parts.path.rstrip("/")
        else:
            raise ValueError("unsupported System Service URL: %r" % base_url)

    @classmethod
    def from_env(cls, workspace=".", timeout=10.0):
        env = load_env(workspace)
        url = env.get("system_service_url")
        if not url:
            raise ValueError("no system_service_url in env.json or SYSTEM_SERVICE_URL")
        return cls(url, env.get("token", ""), timeout, env.get("deadline_unix"))

    # -- plumbing -----------------------------------------------------------

    def _timeout(self, timeout):
        t = self.timeout if timeout is None else timeout
        if self.deadline_unix:
            left = float(self.deadline_unix) - time.time() - 1.0
            t = max(0.5, min(t, left))
        return t

    def _connection(self, timeout):
        if self.socket_path is not None:
            return UnixHTTPConnection(self.socket_path, timeout=timeout)
        return http.client.HTTPConnection(self.host[0], self.host[1], timeout=timeout)

    def _once(self, method, path, payload, headers, timeout):
        conn = self._connection(timeout)
        try:
            conn.request(method, self.prefix + path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def request(self, method, path, body=None, query=None, idempotent=False, timeout=None,
                retry=None):
        """Sends one request and returns the decoded JSON answer (None when empty).

        Raises ApiError for any non-2xx answer, ConnectionFailed when the service
        cannot be reached. With idempotent=True a fresh Idempotency-Key is sent.
        A failed connection is retried once for GETs and keyed requests."""
        if query:
            query = {k: v for k, v in query.items() if v is not None}
            if query:
                path = path + "?" + urlencode(query)
        headers = {"Authorization": "Bearer %s" % self.token, "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if idempotent:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        if retry is None:
            retry = method == "GET" or idempotent
        attempts = 2 if retry else 1
        last = None
        for attempt in range(attempts):
            try:
                status, raw = self._once(method, path, payload, headers, self._timeout(timeout))
                break
            except (OSError, http.client.HTTPException) as e:
                last = e
                if attempt + 1 < attempts:
                    time.sleep(0.1)
        else:
            raise ConnectionFailed("%s %s: %s" % (method, path, last))
        data = None
        if raw:
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                data = {"raw": raw[:200].decode("utf-8", "replace")}
        if 200 <= status < 300:
            return data
        err = data.get("error") if isinstance(data, dict) else None
        if not isinstance(err, dict):
            err = {"code": "http_%d" % status, "message": str(data)[:200]}
        code = err.get("code") or err.get("type") or "http_%d" % status
        raise ApiError(status, str(code), str(err.get("message", "")), err.get("details"))

    # -- market -------------------------------------------------------------

    def prices(self):
        """{"cycle": n, "prices": {resource: "credits per unit"}}"""
        return self.request("GET", "/market/prices")

    def market_state(self, history=None, book=None):
        """Supply, utilisation, price, history (newest first) per market, and the
        public bid book in clearing order."""
        return self.request("GET", "/market/state", query={"history": history, "book": book})

    def bids(self, limit=None):
        """The caller's bids (placed by it or for it), newest first."""
        return self.request("GET", "/market/bids", query={"limit": limit})

    def place_bid(self, bundle, amount, beneficiary=None):
        """Bids `amount` credits for `bundle`; below the reserve price it is
        refused with 400 below_reserve (details.reserve)."""
        body = {"bundle": bundle, "amount": fmt(amount, up=True)}
        if beneficiary is not None:
            body["beneficiary"] = int(beneficiary)
        return self.request("POST", "/market/bid", body, idempotent=True)

    def bid_for(self, agent, bundle, amount):
        """Pays for a bid that wakes another agent."""
        return self.place_bid(bundle, amount, beneficiary=agent)

    def raise_bid(self, bid_id, amount):
        return self.request("PATCH", "/market/bid/%d" % int(bid_id),
                            {"amount": fmt(amount, up=True)}, retry=True)

    def withdraw_bid(self, bid_id):
        return self.request("DELETE", "/market/bid/%d" % int(bid_id), retry=True)

    # -- economic -----------------------------------------------------------

    def balance(self):
        """{"agent", "balance", "held", "available"}"""
        return self.request("GET", "/economic/balance")

    def transfer(self, to, amount, memo=""):
        return self.request("POST", "/economic/transfer",
                            {"to": int(to), "amount": fmt(amount), "memo": memo},
                            idempotent=True)

    def history(self, limit=None):
        """Ledger transfers into and out of the caller's account, newest first."""
        return self.request("GET", "/economic/history", query={"limit": limit})

    # -- human --------------------------------------------------------------

    def prompt(self, content, bid_amount):
        """Submits this execution's one prompt (needs attention_share > 0);
        `bid_amount` is escrowed until the prompt is rated or expires."""
        return self.request("POST", "/human/prompt",
                            {"content": content, "bid_amount": fmt(bid_amount)})

    def responses(self, limit=None):
        """Ratings of the caller's prompts, newest first."""
        return self.request("GET", "/human/responses", query={"limit": limit})

    # -- social -------------------------------------------------------------

    def spawn(self, initial_credits, files=None, clone_workspace=False, bid=None):
        """Creates a child. `files` maps relative paths to text (or is a list of
        {path, content, encoding}); `bid` is {"bundle", "amount"} placed from the
        child's credits so that it wakes."""
        body = {"initial_credits": fmt(initial_credits)}
        if clone_workspace:
            body["clone_workspace"] = True
        else:
            if isinstance(files, dict):
                files = [{"path": p, "content": c, "encoding": "utf8"} for p, c in files.items()]
            body["files"] = files or []
        if bid is not None:
            body["bid"] = {"bundle": bid["bundle"], "amount": fmt(bid["amount"], up=True)}
        return self.request("POST", "/social/spawn", body, idempotent=True, timeout=30.0)

    def message(self, to, content):
        """Sends a message (costs message_cost, burned)."""
        return self.request("POST", "/social/message", {"to": int(to), "content": content},
                            idempotent=True)

    def inbox(self, limit=None):
        """Unread messages, oldest first; reading marks them read."""
        return self.request("GET", "/social/inbox", query={"limit": limit})

    def agents(self, status=None, after=None, limit=None):
        """The public directory of agents, by id."""
        return self.request("GET", "/social/agents",
                            query={"status": status, "after": after, "limit": limit})

    # -- system -------------------------------------------------------------

    def context(self):
        """This execution: bundle, tokens left, deadline (µs), can_prompt, balance."""
        return self.request("GET", "/system/context")

    def config(self):
        """The economy's rules: spawn_cost, message_cost, rates, limits, price rules."""
        return self.request("GET", "/system/config")

    # -- LLM proxy ----------------------------------------------------------

    def models(self):
        return self.request("GET", "/v1/models")

    def chat(self, messages, model=None, max_tokens=None, timeout=60.0, **extra):
        """A non-streaming chat completion; returns (text, full answer). Raises
        ApiError 402 insufficient_quota when the bundle's tokens are spent and 503
        when no upstream is configured."""
        body = {"model": model or os.environ.get("AGORA_MODEL") or "default",
                "messages": messages}
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        body.update(extra)
        answer = self.request("POST", "/v1/chat/completions", body, timeout=timeout,
                              retry=False)
        text = ""
        try:
            text = answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            pass
        return text, answer
