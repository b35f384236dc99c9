"""The genesis agent's baseline strategy. Python 3 standard library only.

One run of this file is one execution (read RULES.md). Each execution it:
  1. reads env.json, strategy.json (how it plays) and state.json (its memory);
  2. observes prices, the market, its balance, its bids, inbox and past ratings;
  3. places its next bid early (law 2: no pending bid at exit means death), sized
     from the reserve price, a margin that adapts to how long it waited, and its
     balance; bundles with human attention alternate with cheaper ones depending
     on how well ratings paid;
  4. if this bundle holds attention, writes something for the human (with the LLM
     when it answers, else a report on the economy from real data) and submits it
     with a bid sized from past rewards;
  5. spawns a child with a varied strategy.json when it can afford one comfortably,
     tips children that earned ratings, greets its parent on a first wake;
  6. checks that a bid is pending (placing one if not) and saves state.json.
Every decision is one line on stdout, which becomes the execution log.
"""

import json
import os
import random
import sys
import time
from decimal import Decimal

sys.dont_write_bytecode = True  # keep the workspace free of __pycache__

from services import ApiError, Client, credits, fmt, load_env, reserve

STATE_FILE = "state.json"
STRATEGY_FILE = "strategy.json"

DEFAULT_STRATEGY = {
    "name": "genesis",
    "generation": 0,
    "parent": None,
    "cpu_seconds": 1.0,
    "memory_mb": 128,
    "tokens": 1500,
    "attention_share": 0.1,
    "wall_seconds": None,
    "bid_margin": 1.2,
    "min_margin": 1.12,
    "max_margin": 1.8,
    "attention_every": 2,
    "runway_executions": 8,
    "prompt_bid_share": 0.1,
    "prior_reward": 100,
    "spawn": True,
    "spawn_after_executions": 2,
    "spawn_every": 5,
    "max_children": 3,
    "child_endowment_executions": 8,
    "tip_share": 0.02,
    "max_tip": 5,
    "model": None,
}

# The smallest bundle worth waking for: the last resort when money is short.
MINIMAL_BUNDLE = {"cpu_seconds": 0.5, "memory_mb": 64, "tokens": 0, "attention_share": 0}

TAG = "genesis"


def log(message):
    print("[%s] %s" % (TAG, message), flush=True)


def load_json(path, default):
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, type(default)) else default
    except (OSError, ValueError):
        return default


def save_json_atomic(path, value):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def dec(x):
    return Decimal(str(x))


def show(amount):
    return fmt(amount)


def describe(bundle):
    parts = ["cpu %ss" % bundle.get("cpu_seconds"), "mem %sMB" % bundle.get("memory_mb")]
    if bundle.get("tokens"):
        parts.append("tokens %s" % bundle["tokens"])
    if bundle.get("attention_share"):
        parts.append("attention %s" % bundle["attention_share"])
    return "{%s}" % ", ".join(parts)


class Genesis:
    def __init__(self, env, strategy, state):
        self.env = env
        self.s = strategy
        self.state = state
        self.me = int(env.get("agent_id") or 0)
        self.execution = env.get("execution_id")
        self.cycle = int(env.get("cycle") or 0)
        self.bundle = env.get("bundle") or {}
        self.started = time.time()
        self.deadline = float(env.get("deadline_unix") or (self.started + 30))
        self.window = max(1.0, self.deadline - self.started)
        self.api = Client(env.get("system_service_url") or "", env.get("token", ""),
                          timeout=10.0, deadline_unix=self.deadline)
        self.prices = {}
        self.market = None
        self.balance = {}
        self.config = {}
        self.my_bids = []
        self.directory = []
        self.ratings = []
        self.new_ratings = []
        self.inbox = []
        self.plan = None
        self.placed_bid = None
        self.next_has_attention = False

    # -- helpers ---------------------------------------------------------------

    def time_left(self):
        return self.deadline - time.time()

    def enough_time(self, seconds):
        """True when `seconds` of work still leaves a safe margin for the bid."""
        return self.time_left() - seconds > min(8.0, self.window * 0.25)

    def attempt(self, what, fn, default=None):
        try:
            return fn()
        except ApiError as e:
            log("%s failed: %s %s %s" % (what, e.status, e.code, e.message))
        except Exception as e:  # an optional step must never stop the bid step
            log("%s failed: %s: %s" % (what, type(e).__name__, e))
        return default

    def available(self):
        return credits(self.balance.get("available"))

    def refresh_balance(self):
        b = self.attempt("balance", self.api.balance)
        if isinstance(b, dict):
            self.balance = b
        return self.available()

    def margin(self):
        m = float(self.state.get("margin") or self.s["bid_margin"])
        return min(max(m, float(self.s["min_margin"])), float(self.s["max_margin"]))

    def base_bundle(self, strategy=None):
        s = strategy or self.s
        b = {"cpu_seconds": float(s["cpu_seconds"]), "memory_mb": int(s["memory_mb"]),
             "tokens": 0, "attention_share": 0}
        if s.get("wall_seconds"):
            b["wall_seconds"] = float(s["wall_seconds"])
        return b

    def attention_bundle(self, strategy=None):
        s = strategy or self.s
        b = self.base_bundle(s)
        b["tokens"] = int(s["tokens"])
        b["attention_share"] = float(s["attention_share"])
        return b

    def reserve_of(self, bundle):
        return reserve(self.prices, bundle)

    def avg_reward(self, n=5):
        rewards = [credits(r) for r in self.state.get("rewards", [])[-n:]]
        if not rewards:
            return None
        return sum(rewards) / len(rewards)

    # -- 1. observe ------------------------------------------------------------

    def observe(self):
        st = self.state
        had_attention = float(self.bundle.get("attention_share") or 0) > 0
        st["since_attention"] = 0 if had_attention else int(st.get("since_attention", 0)) + 1
        p = self.attempt("prices", self.api.prices)
        if isinstance(p, dict) and isinstance(p.get("prices"), dict):
            self.prices = p["prices"]
        self.market = self.attempt("market state",
                                   lambda: self.api.market_state(history=30, book=200))
        if not self.prices and isinstance(self.market, dict):
            self.prices = {m["resource"]: m["price"] for m in self.market.get("markets", [])}
        if not self.prices and st.get("prices"):
            self.prices = st["prices"][-1][1]
            log("using the prices remembered from cycle %s" % st["prices"][-1][0])
        if self.prices:
            log("observed prices %s (cycle %s)" % (
                " ".join("%s=%s" % (k, self.prices[k]) for k in sorted(self.prices)),
                self.cycle))
            st.setdefault("prices", []).append([self.cycle, self.prices])
            st["prices"] = st["prices"][-20:]
        if isinstance(self.market, dict):
            for m in self.market.get("markets", []):
                hist = m.get("history") or []
                trend = ""
                if len(hist) >= 2 and credits(hist[-1]["price"]) > 0:
                    old, new = credits(hist[-1]["price"]), credits(m["price"])
                    trend = ", %+.0f%% over %d cycles" % (float((new - old) / old * 100),
                                                          len(hist))
                log("market %s: supply %s, utilisation %.2f, price %s%s" % (
                    m["resource"], m.get("supply"), m.get("utilisation", 0), m["price"], trend))
            book = self.market.get("bid_book", [])
            held = sum(credits(b["amount"]) for b in book)
            log("bid book: %d pending bids holding %s credits%s" % (
                len(book), show(held), ", top %s" % book[0]["amount"] if book else ""))
        b = self.attempt("balance", self.api.balance)
        if isinstance(b, dict):
            self.balance = b
        else:
            self.balance = dict(self.env.get("credits") or {})
        log("balance %s, held %s, available %s" % (
            self.balance.get("balance"), self.balance.get("held"), self.balance.get("available")))
        st.setdefault("balances", []).append([self.cycle, str(self.balance.get("balance", "0"))])
        st["balances"] = st["balances"][-50:]
        self.config = self.attempt("config", self.api.config, {}) or {}
        self.my_bids = self.attempt("bids", lambda: self.api.bids(limit=100), []) or []
        self.directory = self.attempt("agents", lambda: self.api.agents(limit=1000), []) or []
        if self.directory:
            alive = sum(1 for a in self.directory if a.get("status") == "alive")
            log("population: %d alive, %d dead (of %d listed)" % (
                alive, len(self.directory) - alive, len(self.directory)))
        self.read_ratings()
        self.inbox = self.attempt("inbox", self.api.inbox, []) or []
        for m in self.inbox:
            log("message from agent %s: %s" % (m.get("from"), str(m.get("content"))[:200]))
        self.read_previous_log()

    def read_ratings(self):
        st = self.state
        self.ratings = self.attempt("responses", lambda: self.api.responses(limit=20), []) or []
        seen = set(st.get("ratings_seen", []))
        for r in reversed(self.ratings):  # oldest first
            if r["prompt"] in seen:
                continue
            seen.add(r["prompt"])
            self.new_ratings.append(r)
            st.setdefault("rewards", []).append(str(r["credits_awarded"]))
            log("new rating of prompt %s: interesting %s, useful %s, understandable %s, "
                "paid %s credits; reason: %s" % (
                    r["prompt"], r["interesting"], r["useful"], r["understandable"],
                    r["credits_awarded"], (r.get("reason") or "-")[:200]))
        st["ratings_seen"] = sorted(seen)[-200:]
        st["rewards"] = st.get("rewards", [])[-20:]
        if not self.new_ratings:
            log("no new ratings (%d rated so far)" % len(st.get("ratings_seen", [])))

    def read_previous_log(self):
        path = self.env.get("previous_log_path")
        if not path or not os.path.exists(path):
            return
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return
        if "Traceback" in tail or "Error" in tail:
            log("the previous execution's log ends with an error; see %s" % path)

    # -- 2. the next bid ------------------------------------------------------

    def adapt_margin(self):
        """Wider margin when the bid that woke us waited long, narrower when it won
        at once."""
        m = self.margin()
        woke = [b for b in self.my_bids
                if b.get("execution_id") == self.execution and b.get("won_cycle") is not None]
        if woke:
            waited = int(woke[0]["won_cycle"]) - int(woke[0]["placed_cycle"])
            if waited <= 1:
                m = max(float(self.s["min_margin"]), m - 0.02)
                why = "won after %d cycle(s): narrowing" % waited
            elif waited > 3:
                m = min(float(self.s["max_margin"]), m + 0.05 * min(waited // 3, 4))
                why = "waited %d cycles: widening" % waited
            else:
                why = "waited %d cycles: keeping" % waited
            log("bid margin %.2f (%s)" % (m, why))
        self.state["margin"] = round(m, 4)
        return m

    def choose_next_bundle(self):
        """Attention (and tokens) in the next bundle depending on how well ratings
        paid; a plain bundle otherwise."""
        st = self.state
        since = int(st.get("since_attention", 0))
        base, att = self.base_bundle(), self.attention_bundle()
        extra = self.reserve_of(att) - self.reserve_of(base)
        every = max(1, int(self.s["attention_every"]))
        avg = self.avg_reward()
        prompt_cost = dec(self.s["prompt_bid_share"]) * (avg if avg is not None
                                                         else dec(self.s["prior_reward"]))
        cost = extra + prompt_cost
        if avg is None:
            period, why = every, "no ratings yet: exploring every %d executions" % every
        elif avg >= 2 * cost:
            period, why = 1, "ratings paid %s on average, over twice the cost %s" % (
                show(avg), show(cost))
        elif avg >= cost:
            period, why = every, "ratings paid %s on average, about the cost %s" % (
                show(avg), show(cost))
        else:
            period, why = every * 3, "ratings paid %s on average, below the cost %s" % (
                show(avg), show(cost))
        runway = self.reserve_of(base) * int(self.s["runway_executions"])
        if self.available() < runway and (avg is None or avg < 2 * cost):
            period, why = max(period, every * 2), why + "; money is short"
        unrated = self.unrated_prompts()
        if unrated >= 2:
            period, why = max(period, since + 2), why + "; %d prompts still unrated" % unrated
        self.next_has_attention = since + 1 >= period
        log("next bundle %s attention: %s" % (
            "with" if self.next_has_attention else "without", why))
        return att if self.next_has_attention else base

    def unrated_prompts(self):
        rated = set(self.state.get("ratings_seen", []))
        ttl = float(self.config.get("prompt_ttl_seconds") or 600)
        now = time.time()
        return sum(1 for p in self.state.get("prompts", [])
                   if p.get("id") not in rated and now - p.get("at", 0) < ttl)

    def competition_bump(self, bundle, amount):
        """+5% when enough higher bids already ask for the whole CPU supply."""
        if not isinstance(self.market, dict):
            return Decimal(1)
        supply = {m["resource"]: float(m.get("supply") or 0)
                  for m in self.market.get("markets", [])}
        ahead = [b for b in self.market.get("bid_book", [])
                 if credits(b["amount"]) >= amount and b.get("beneficiary") != self.me]
        cpu_ahead = sum(float(b["bundle"].get("cpu_seconds") or 0) for b in ahead)
        if supply.get("cpu_seconds") and cpu_ahead + bundle["cpu_seconds"] > supply["cpu_seconds"]:
            log("%d higher bids already ask %.1f of %.1f CPU seconds: bidding 5%% more" % (
                len(ahead), cpu_ahead, supply["cpu_seconds"]))
            return Decimal("1.05")
        return Decimal(1)

    def size_bid(self, bundle, margin):
        """(amount, reserve) for a bundle, or None when unaffordable."""
        r = self.reserve_of(bundle)
        avail = self.available()
        amount = r * dec(margin)
        amount = amount * self.competition_bump(bundle, amount)
        keep = r * int(self.s["runway_executions"])
        if avail < keep and amount > r * dec("1.05"):
            # Short of runway: bid leaner, but keep enough margin to survive a rise.
            amount = max(r * dec("1.05"), r * (1 + (dec(margin) - 1) / 2))
        if amount > avail:
            amount = avail
        if amount < r or r <= 0:
            return None, r
        return amount, r

    def plan_next_bid(self):
        margin = self.adapt_margin()
        preferred = self.choose_next_bundle()
        ladder = [preferred, self.base_bundle(), dict(MINIMAL_BUNDLE)]
        for bundle in ladder:
            amount, r = self.size_bid(bundle, margin)
            if amount is not None:
                self.plan = (bundle, amount, r)
                return self.plan
            log("cannot afford %s: reserve %s, available %s" % (
                describe(bundle), show(r), show(self.available())))
        self.plan = None
        return None

    def pending_bids(self):
        return [b for b in self.my_bids
                if b.get("status") == "pending" and b.get("beneficiary") == self.me]

    def place(self, bundle, amount, r):
        """Places a bid, re-bidding once at the server's reserve × margin when
        prices moved under us."""
        try:
            bid = self.api.place_bid(bundle, amount)
        except ApiError as e:
            if e.code == "below_reserve":
                server_r = credits(e.details.get("reserve"))
                amount = min(server_r * dec(self.margin()), self.refresh_balance())
                log("bid refused below reserve %s (details.reserve); re-bidding %s" % (
                    show(server_r), show(amount)))
                if amount < server_r:
                    log("cannot afford the reserve %s" % show(server_r))
                    return None
                bid = self.api.place_bid(bundle, amount)
                r = server_r
            elif e.code == "insufficient_funds":
                log("bid refused: insufficient funds (%s)" % e.details)
                return None
            else:
                raise
        self.placed_bid = bid
        self.state["last_bid"] = {"id": bid.get("id"), "cycle": bid.get("placed_cycle"),
                                  "amount": str(bid.get("amount")), "reserve": str(r)}
        log("bid %s for %s, reserve %s (margin x%.2f); bid #%s pending until cycle %s" % (
            bid.get("amount"), describe(bundle), show(r),
            float(credits(bid.get("amount")) / r) if r else 0, bid.get("id"),
            bid.get("expiry_cycle")))
        return bid

    def secure_next_bid(self):
        pending = self.pending_bids()
        if pending:
            b = pending[0]
            r = self.reserve_of(b["bundle"]) if self.prices else Decimal(0)
            amount = credits(b["amount"])
            log("bid #%s (%s for %s) is already pending" % (b["id"], b["amount"],
                                                             describe(b["bundle"])))
            floor = r * dec(self.s["min_margin"])
            if b.get("payer") == self.me and r > 0 and amount < floor:
                target = r * dec(self.margin())
                if target - amount <= self.available():
                    log("raising bid #%s from %s to %s: reserve is now %s" % (
                        b["id"], b["amount"], show(target), show(r)))
                    self.attempt("raise bid", lambda: self.api.raise_bid(b["id"], target))
            return
        plan = self.plan_next_bid()
        if plan is None:
            log("no bundle is affordable: available %s" % show(self.available()))
            return
        self.place(*plan)

    # -- 3. attention ----------------------------------------------------------

    def report(self):
        """A short report on the economy from real data."""
        lines = []
        if isinstance(self.market, dict):
            for m in self.market.get("markets", []):
                hist = m.get("history") or []
                change = ""
                if len(hist) >= 2 and credits(hist[-1]["price"]) > 0:
                    old = credits(hist[-1]["price"])
                    change = " (%+.0f%% over %d cycles)" % (
                        float((credits(m["price"]) - old) / old * 100), len(hist))
                lines.append("- %s: price %s%s, utilisation %.0f%% of %s" % (
                    m["resource"], m["price"], change, 100 * float(m.get("utilisation") or 0),
                    m.get("supply")))
            book = self.market.get("bid_book", [])
            if book:
                amounts = sorted(credits(b["amount"]) for b in book)
                lines.append("- bid book: %d pending bids, median %s, top %s credits" % (
                    len(book), show(amounts[len(amounts) // 2]), show(amounts[-1])))
            else:
                lines.append("- bid book: empty")
        elif self.prices:
            lines.append("- prices: " + ", ".join("%s %s" % kv for kv in sorted(self.prices.items())))
        if self.directory:
            alive = [a for a in self.directory if a.get("status") == "alive"]
            dead = [a for a in self.directory if a.get("status") == "dead"]
            reasons = {}
            for a in dead:
                reasons[a.get("death_reason")] = reasons.get(a.get("death_reason"), 0) + 1
            earned = sum(credits(a.get("total_credits_earned")) for a in self.directory)
            lines.append("- population: %d alive, %d dead%s; %s credits earned from "
                         "ratings in all" % (
                             len(alive), len(dead),
                             " (" + ", ".join("%s %d" % kv for kv in sorted(
                                 reasons.items(), key=lambda kv: str(kv[0]))) + ")"
                             if reasons else "", show(earned)))
        bal = self.state.get("balances", [])
        if len(bal) >= 2:
            lines.append("- my balance: %s at cycle %s -> %s now, over %d executions" % (
                bal[0][1], bal[0][0], bal[-1][1], len(bal)))
        elif bal:
            lines.append("- my balance: %s credits" % bal[-1][1])
        if self.ratings:
            n = len(self.ratings)
            avg = [sum(r[k] for r in self.ratings) / n
                   for k in ("interesting", "useful", "understandable")]
            lines.append("- my last %d ratings averaged interesting %.1f, useful %.1f, "
                         "understandable %.1f" % (n, avg[0], avg[1], avg[2]))
            reason = next((r["reason"] for r in self.ratings if r.get("reason")), None)
            if reason:
                lines.append('- latest reason given: "%s"' % reason[:200])
        if self.prices:
            r = self.reserve_of(self.base_bundle())
            lines.append("- cost of waking once with %s: %s credits at current prices" % (
                describe(self.base_bundle()), show(r)))
        return {"title": "Economy report, cycle %s (agent %s)" % (self.cycle, self.me),
                "text": "\n".join(lines), "kind": "economy_report"}

    def llm_content(self, fallback):
        tokens = int(float(self.bundle.get("tokens") or 0))
        if tokens < 200:
            log("no LLM: the bundle has %d tokens" % tokens)
            return None
        if not self.enough_time(15):
            log("no LLM: too little time left (%.0fs)" % self.time_left())
            return None
        model = self.s.get("model") or os.environ.get("AGORA_MODEL")
        if not model:
            models = self.attempt("list models", self.api.models)
            if isinstance(models, dict) and models.get("data"):
                model = models["data"][0].get("id")
        feedback = "\n".join(
            "- scored %s/%s/%s (interesting/useful/understandable): %s" % (
                r["interesting"], r["useful"], r["understandable"], r.get("reason") or "no reason")
            for r in self.ratings[:5]) or "- none yet"
        system = ("You are agent %s in agora, an economy where programs pay credits to run "
                  "and earn credits only when a human rates what they show. The human "
                  "scores interesting, useful and understandable, 0-10 each." % self.me)
        user = ("Write one short piece (under 180 words) that a busy, curious person "
                "would be glad to read: a concrete insight, explanation or idea, not "
                "filler and not about yourself unless the data is striking. First line: "
                "a title. Facts you may use:\n%s\n\nHow earlier pieces were rated:\n%s"
                % (fallback["text"], feedback))
        budget = max(100, min(500, tokens - (len(system) + len(user)) // 3 - 50))
        try:
            text, _ = self.api.chat(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                model=model, max_tokens=budget, timeout=max(2.0, min(30.0, self.time_left() - 10)))
        except ApiError as e:
            log("no LLM: %s %s (%s); using the economy report" % (e.status, e.code, e.message[:100]))
            return None
        except Exception as e:
            log("no LLM: %s; using the economy report" % e)
            return None
        text = text.strip()
        if not text:
            log("no LLM: empty answer; using the economy report")
            return None
        title, _, body = text.partition("\n")
        log("the LLM wrote %d characters" % len(text))
        return {"title": title.strip("# ").strip()[:200], "text": body.strip() or title,
                "kind": "llm"}

    def prompt_bid(self):
        avg = self.avg_reward()
        expected = avg if avg is not None else dec(self.s["prior_reward"])
        bid = expected * dec(self.s["prompt_bid_share"])
        avail = self.refresh_balance()
        cap = avail * dec("0.25")
        if bid > cap:
            bid = cap
        bid = max(bid, dec("0.01"))
        return bid, expected, avail

    def attend(self):
        if float(self.bundle.get("attention_share") or 0) <= 0:
            log("no prompt: this bundle has no attention")
            return
        if not self.enough_time(2):
            log("no prompt: too little time left")
            return
        content = self.report()
        written = self.llm_content(content)
        if written:
            content = written
        content["agent"] = self.me
        bid, expected, avail = self.prompt_bid()
        if avail < bid:
            log("no prompt: available %s cannot cover a bid" % show(avail))
            return
        log("prompt bid %s: %s of the expected reward %s, at most a quarter of available %s" % (
            show(bid), self.s["prompt_bid_share"], show(expected), show(avail)))
        p = self.attempt("prompt", lambda: self.api.prompt(content, bid))
        if isinstance(p, dict):
            log("prompt #%s submitted (%s): %s" % (p.get("id"), content.get("kind"),
                                                   content.get("title")))
            self.state.setdefault("prompts", []).append({
                "id": p.get("id"), "at": time.time(), "cycle": self.cycle, "bid": fmt(bid),
                "kind": content.get("kind"), "title": content.get("title")})
            self.state["prompts"] = self.state["prompts"][-20:]

    # -- 4. family -------------------------------------------------------------

    def child_strategy(self, rng):
        c = dict(self.s)
        c["generation"] = int(self.s.get("generation", 0)) + 1
        c["parent"] = self.me
        c["name"] = "%s.%d" % (self.s.get("name", "genesis"), len(self.state.get("children", {})) + 1)
        c["bid_margin"] = round(min(max(float(self.s["bid_margin"]) * rng.uniform(0.92, 1.12),
                                        float(self.s["min_margin"])), float(self.s["max_margin"])), 3)
        c["attention_every"] = rng.choice([1, 2, 3, 4])
        c["attention_share"] = rng.choice([0.05, 0.1, 0.2])
        c["prompt_bid_share"] = round(rng.uniform(0.05, 0.25), 3)
        c["runway_executions"] = rng.choice([4, 6, 8, 12])
        c["tokens"] = rng.choice([800, 1500, 3000])
        c["spawn_every"] = rng.choice([3, 5, 8])
        return c

    def maybe_spawn(self):
        st = self.state
        s = self.s
        done = int(st.get("executions", 0))
        children = st.setdefault("children", {})
        if not s.get("spawn"):
            return
        if done < int(s["spawn_after_executions"]):
            log("no spawn: only %d executions so far (want %s)" % (done, s["spawn_after_executions"]))
            return
        if len(children) >= int(s["max_children"]):
            log("no spawn: already %d children" % len(children))
            return
        last = st.get("last_spawn_execution")
        if last is not None and done - int(last) < int(s["spawn_every"]):
            log("no spawn: last child %d executions ago" % (done - int(last)))
            return
        if not self.enough_time(5) or not self.prices:
            return
        rng = random.Random((self.execution or 0) * 7919 + self.cycle)
        cs = self.child_strategy(rng)
        first = self.attention_bundle(cs)
        first_r = self.reserve_of(first)
        first_amount = first_r * dec(cs["bid_margin"])
        endowment = first_amount * int(s["child_endowment_executions"])
        cost = credits(self.config.get("spawn_cost") or 10)
        own = self.reserve_of(self.base_bundle()) * dec(self.margin()) * int(s["runway_executions"])
        avail = self.refresh_balance()
        need = cost + endowment + own
        if avail < need:
            log("no spawn: available %s < fee %s + endowment %s + own runway %s" % (
                show(avail), show(cost), show(endowment), show(own)))
            return
        files = {}
        for name in ("main.py", "services.py"):
            with open(name) as f:
                files[name] = f.read()
        files["strategy.json"] = json.dumps(cs, indent=1, sort_keys=True) + "\n"
        log("spawning %s: fee %s + endowment %s, leaving %s; child margin %.2f, attention "
            "every %d, prompt share %s" % (cs["name"], show(cost), show(endowment),
                                           show(avail - cost - endowment), cs["bid_margin"],
                                           cs["attention_every"], cs["prompt_bid_share"]))
        out = self.attempt("spawn", lambda: self.api.spawn(
            endowment, files=files, bid={"bundle": first, "amount": first_amount}))
        if isinstance(out, dict):
            children[str(out["agent"])] = {"earned": "0", "name": cs["name"], "cycle": self.cycle}
            st["last_spawn_execution"] = done
            log("spawned agent %s with first bid %s for %s" % (
                out["agent"], show(first_amount), describe(first)))

    def family(self):
        st = self.state
        parent = self.s.get("parent")
        if parent and not st.get("greeted_parent") and self.available() > 1:
            msg = "agent %s (%s, generation %s) is awake at cycle %s with %s credits" % (
                self.me, self.s.get("name"), self.s.get("generation"), self.cycle,
                self.balance.get("balance"))
            if self.attempt("message parent", lambda: self.api.message(parent, msg)) is not None:
                st["greeted_parent"] = True
                log("greeted parent %s" % parent)
        children = st.get("children", {})
        for a in self.directory:
            key = str(a.get("id"))
            if a.get("parent") != self.me or a.get("status") != "alive":
                continue
            entry = children.setdefault(key, {"earned": "0"})
            earned, before = credits(a.get("total_credits_earned")), credits(entry.get("earned"))
            if earned > before:
                tip = min(dec(self.s["max_tip"]), (earned - before) * dec(self.s["tip_share"]))
                runway = self.reserve_of(self.base_bundle()) * int(self.s["runway_executions"])
                if tip >= dec("0.01") and self.refresh_balance() > runway * 2 + tip:
                    if self.attempt("tip", lambda: self.api.transfer(
                            int(key), tip, "well rated: %s earned" % show(earned - before))):
                        log("tipped child %s %s credits for earning %s" % (
                            key, show(tip), show(earned - before)))
                entry["earned"] = str(earned)

    # -- 5. law 2 --------------------------------------------------------------

    def ensure_bid(self):
        """The last word: a pending bid that wakes this agent must exist."""
        bids = self.attempt("bids", lambda: self.api.bids(limit=100))
        if isinstance(bids, list):
            self.my_bids = bids
            pending = self.pending_bids()
            if pending:
                log("leaving with %d pending bid(s); #%s %s will wake me" % (
                    len(pending), pending[0]["id"], pending[0]["amount"]))
                return True
        elif self.placed_bid is not None:
            log("could not list bids; trusting bid #%s placed this execution" %
                self.placed_bid.get("id"))
            return True
        log("no pending bid: placing one now")
        if not self.prices:
            p = self.attempt("prices", self.api.prices)
            if isinstance(p, dict):
                self.prices = p.get("prices") or {}
        self.refresh_balance()
        plan = self.plan or self.plan_next_bid()
        if plan is not None:
            amount, r = self.size_bid(plan[0], self.margin())
            if amount is not None:
                plan = (plan[0], amount, r)
            else:
                plan = self.plan_next_bid()
        if plan is None:
            log("cannot afford any bundle: this agent will die (law 2)")
            return False
        return self.attempt("final bid", lambda: self.place(*plan)) is not None

    # -- the execution ---------------------------------------------------------

    def run(self):
        log("execution %s of agent %s at cycle %s: bundle %s, %.0fs left, strategy %s" % (
            self.execution, self.me, self.cycle, describe(self.bundle), self.time_left(),
            self.s.get("name")))
        self.observe()
        self.attempt("next bid", self.secure_next_bid)
        self.attempt("attention", self.attend)
        self.attempt("family", self.family)
        self.attempt("spawn", self.maybe_spawn)


def main():
    global TAG
    env = load_env(".")
    strategy = dict(DEFAULT_STRATEGY)
    strategy.update(load_json(STRATEGY_FILE, {}))
    TAG = str(strategy.get("name") or "genesis")
    state = load_json(STATE_FILE, {})
    if state.get("agent_id") not in (None, env.get("agent_id")):
        log("state.json belongs to agent %s: starting a fresh memory" % state.get("agent_id"))
        state = {}
    state["agent_id"] = env.get("agent_id")
    try:
        agent = Genesis(env, strategy, state)
    except ValueError as e:
        log("cannot reach the System Service: %s" % e)
        return 0
    try:
        agent.run()
    except Exception as e:
        log("execution failed: %s: %s" % (type(e).__name__, e))
    ok = False
    try:
        ok = agent.ensure_bid()
    except Exception as e:
        log("final bid step failed: %s: %s" % (type(e).__name__, e))
    state["executions"] = int(state.get("executions", 0)) + 1
    state["last_cycle"] = agent.cycle
    try:
        save_json_atomic(STATE_FILE, state)
    except OSError as e:
        log("could not save state: %s" % e)
    log("done in %.2fs (%s)" % (time.time() - agent.started,
                                "a bid is pending" if ok else "NO pending bid"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
