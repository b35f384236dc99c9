"""Runs the genesis agent (agents/genesis/main.py) in a temporary workspace against a
fake System Service on a real Unix socket (and once over TCP). Standard library only:

    python3 -m unittest discover -s agents/tests -v
"""

import ast
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
AGENTS = os.path.dirname(HERE)
GENESIS = os.path.join(AGENTS, "genesis")
TEMPLATE_FILES = ("main.py", "services.py", "strategy.json")

MICRO = 1_000_000
SCALE = {"cpu_seconds": 1000, "memory_mb": 1, "tokens": 1, "attention_share": 1_000_000}


def micros(amount):
    return int((Decimal(str(amount)) * MICRO).to_integral_value())


def show(m):
    text = format(Decimal(m) / MICRO, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def reserve_micros(prices, bundle):
    """The server's rule, written independently of services.reserve."""
    total = 0
    for r, scale in SCALE.items():
        p = micros(prices[r])
        q = int(round(float(bundle.get(r) or 0) * scale))
        total += -(-p * q // scale)
    return total


class World:
    """The fake economy behind the fake service."""

    def __init__(self, **kw):
        self.me = 3
        self.prices = {"cpu_seconds": "1", "memory_mb": "0.1", "tokens": "0.001",
                       "attention_share": "10"}
        self.balance = micros(kw.get("balance", "990.5"))
        self.held = 0
        self.bids = []
        self.next_bid = 100
        self.requests = []
        self.llm = kw.get("llm", 503)           # 503, 402 or "ok"
        self.prompt_status = kw.get("prompt_status", 201)
        self.below_reserve_first = kw.get("below_reserve_first", False)
        self.responses = kw.get("responses", [])
        self.inbox = kw.get("inbox", [])
        self.spawns = []
        self.messages = []
        self.transfers = []
        self.prompts = []
        self.placed = []      # (amount µcr, reserve µcr, available µcr before) per accepted bid
        self.cycle = 42
        self.agents = [{"id": 1, "status": "dead", "death_reason": "no_bid", "parent": None,
                        "lineage": [], "total_credits_earned": "0"},
                       {"id": 3, "status": "alive", "death_reason": None, "parent": None,
                        "lineage": [], "total_credits_earned": "120"}]
        self.agents += kw.get("extra_agents", [])
        self.won_bid = {"id": 7, "payer": 3, "beneficiary": 3, "status": "won",
                        "amount": "40", "placed_cycle": 40, "won_cycle": 41, "execution_id": 17,
                        "expiry_cycle": 60, "bundle": {"cpu_seconds": 2.0, "memory_mb": 256.0,
                                                       "tokens": 2000.0, "attention_share": 1.0,
                                                       "wall_seconds": None}}
        self.bids.append(self.won_bid)
        for b in kw.get("pending", []):
            self.bids.append(b)
            self.held += micros(b["amount"])
        self.lock = threading.Lock()

    def balance_view(self):
        return {"agent": self.me, "balance": show(self.balance), "held": show(self.held),
                "available": show(self.balance - self.held)}

    def market_view(self):
        markets = []
        for r, p in self.prices.items():
            hist = [{"cycle": self.cycle - i, "allocated": 1.0, "utilisation": 0.5,
                     "price": show(micros(p) * (100 - i) // 100)} for i in range(5)]
            supply = {"cpu_seconds": 8.0, "memory_mb": 4096.0, "tokens": 100000.0,
                      "attention_share": 1.0}[r]
            markets.append({"resource": r, "supply": supply,
                            "in_use": 0.0, "utilisation": 0.5, "price": p,
                            "min_price": "0.001", "max_price": "1000", "history": hist})
        book = [b for b in self.bids if b["status"] == "pending"]
        return {"cycle": self.cycle, "paused": False, "markets": markets, "bid_book": book}

    def handle(self, method, path, query, body, headers):
        """Returns (status, json)."""
        def err(status, code, message, details=None):
            return status, {"error": {"code": code, "message": message, "details": details or {}}}

        if headers.get("Authorization") != "Bearer agora_x_test":
            return err(401, "invalid_token", "bad token")
        if (method, path) == ("GET", "/market/prices"):
            return 200, {"cycle": self.cycle, "prices": self.prices}
        if (method, path) == ("GET", "/market/state"):
            return 200, self.market_view()
        if (method, path) == ("GET", "/market/bids"):
            mine = [b for b in self.bids if self.me in (b["payer"], b["beneficiary"])]
            return 200, list(reversed(mine))
        if (method, path) == ("POST", "/market/bid"):
            if not headers.get("Idempotency-Key"):
                return err(400, "test_missing_key", "the genesis agent always sends a key")
            amount = micros(body["amount"])
            r = reserve_micros(self.prices, body["bundle"])
            if self.below_reserve_first:
                self.below_reserve_first = False
                r = r * 13 // 10
                return err(400, "below_reserve", "amount is below the reserve",
                           {"reserve": show(r)})
            if amount < r:
                return err(400, "below_reserve", "amount is below the reserve",
                           {"reserve": show(r)})
            avail = self.balance - self.held
            if amount > avail:
                return err(409, "insufficient_funds", "not enough",
                           {"available": show(avail), "needed": show(amount)})
            self.held += amount
            self.placed.append((amount, r, avail))
            self.next_bid += 1
            bid = {"id": self.next_bid, "payer": self.me,
                   "beneficiary": body.get("beneficiary", self.me), "bundle": body["bundle"],
                   "amount": show(amount), "status": "pending", "placed_cycle": self.cycle,
                   "expiry_cycle": self.cycle + 20, "won_cycle": None, "execution_id": None}
            self.bids.append(bid)
            return 201, bid
        if method == "PATCH" and path.startswith("/market/bid/"):
            bid = next(b for b in self.bids if b["id"] == int(path.rsplit("/", 1)[1]))
            delta = micros(body["amount"]) - micros(bid["amount"])
            self.held += delta
            bid["amount"] = body["amount"]
            return 200, bid
        if (method, path) == ("GET", "/economic/balance"):
            return 200, self.balance_view()
        if (method, path) == ("POST", "/economic/transfer"):
            self.balance -= micros(body["amount"])
            self.transfers.append(body)
            return 201, {"id": 1, "amount": body["amount"]}
        if (method, path) == ("GET", "/system/config"):
            return 200, {"spawn_cost": "10", "message_cost": "0.1", "prompt_ttl_seconds": 600,
                         "max_pending_bids": 10, "bid_ttl_cycles": 20}
        if (method, path) == ("GET", "/social/agents"):
            return 200, self.agents
        if (method, path) == ("GET", "/social/inbox"):
            out, self.inbox = self.inbox, []
            return 200, out
        if (method, path) == ("GET", "/human/responses"):
            return 200, self.responses
        if (method, path) == ("POST", "/human/prompt"):
            if self.prompt_status != 201:
                return err(self.prompt_status, "prompt_refused", "refused for the test")
            amount = micros(body["bid_amount"])
            if amount > self.balance - self.held:
                return err(409, "insufficient_funds", "not enough")
            self.held += amount
            self.prompts.append(body)
            return 201, {"id": 500 + len(self.prompts), "status": "pending"}
        if (method, path) == ("POST", "/social/spawn"):
            r = reserve_micros(self.prices, body["bid"]["bundle"])
            if micros(body["bid"]["amount"]) < r:
                return err(400, "below_reserve", "child bid", {"reserve": show(r)})
            cost = micros(body["initial_credits"]) + 10 * MICRO
            if cost > self.balance - self.held:
                return err(409, "insufficient_funds", "not enough")
            self.balance -= cost
            self.spawns.append(body)
            return 201, {"agent": 50 + len(self.spawns), "bid": {"id": 999}}
        if (method, path) == ("POST", "/social/message"):
            self.messages.append(body)
            self.balance -= MICRO // 10
            return 201, {"id": 1, "fee": "0.1"}
        if (method, path) == ("GET", "/v1/models"):
            return 200, {"object": "list", "data": [{"id": "test-model"}]}
        if (method, path) == ("POST", "/v1/chat/completions"):
            if self.llm == "ok":
                return 200, {"choices": [{"message": {"role": "assistant", "content":
                             "Why prices fall\nIdle markets get cheaper by 5% a cycle."}}]}
            if self.llm == 402:
                return 402, {"error": {"message": "quota", "type": "insufficient_quota",
                                       "code": "insufficient_quota"}}
            return 503, {"error": {"message": "no upstream", "type": "unavailable",
                                   "code": "no_upstream"}}
        return err(404, "not_found", "%s %s" % (method, path))


def make_handler(world):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def address_string(self):
            return "fake"

        def _serve(self):
            parts = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            body = json.loads(raw) if raw else None
            with world.lock:
                world.requests.append((self.command, parts.path, dict(self.headers), body))
                status, answer = world.handle(self.command, parts.path, parse_qs(parts.query),
                                              body, self.headers)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Harness:
    """A workspace, a fake service and one run of main.py."""

    def __init__(self, tcp=False, bundle=None, strategy=None, state=None, **world):
        self.dir = tempfile.mkdtemp(prefix="genesis-test-")
        self.ws = os.path.join(self.dir, "workspace")
        os.mkdir(self.ws)
        for name in TEMPLATE_FILES:
            shutil.copy(os.path.join(GENESIS, name), self.ws)
        if strategy:
            s = read_json(os.path.join(self.ws, "strategy.json"))
            s.update(strategy)
            write_json(os.path.join(self.ws, "strategy.json"), s)
        if state is not None:
            write_json(os.path.join(self.ws, "state.json"), state)
        self.world = World(**world)
        handler = make_handler(self.world)
        if tcp:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self.server.daemon_threads = True
            self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        else:
            self.sock = os.path.join(self.dir, "api.sock")
            self.server = UnixServer(self.sock, handler)
            self.url = "unix://" + self.sock
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.bundle = bundle or {"cpu_seconds": 2.0, "memory_mb": 256.0, "tokens": 2000.0,
                                 "attention_share": 1.0, "wall_seconds": 30.0}

    def run(self, timeout=40):
        w = self.world
        now = time.time()
        env = {"agent_id": w.me, "execution_id": 17, "cycle": w.cycle,
               "credits": w.balance_view(), "bundle": self.bundle,
               "deadline": "2026-11-26T12:00:30.000000Z", "deadline_unix": now + 30,
               "system_service_url": self.url, "token": "agora_x_test",
               "openai_base_url": self.url + "/v1", "rules_path": "/agora/RULES.md",
               "api_description_path": "/agora/openapi.json",
               "previous_log_path": ".agora/previous_execution.log"}
        with open(os.path.join(self.ws, "env.json"), "w") as f:
            json.dump(env, f)
        penv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_ID": str(w.me),
                "EXECUTION_ID": "17", "SYSTEM_SERVICE_URL": self.url,
                "AGORA_TOKEN": "agora_x_test", "OPENAI_BASE_URL": self.url + "/v1",
                "OPENAI_API_KEY": "agora_x_test"}
        p = subprocess.run([sys.executable, "main.py"], cwd=self.ws, env=penv,
                           capture_output=True, text=True, timeout=timeout)
        self.stdout, self.stderr, self.code = p.stdout, p.stderr, p.returncode
        return p

    def calls(self, method, path):
        return [r for r in self.world.requests if r[0] == method and r[1] == path]

    def pending(self):
        return [b for b in self.world.bids
                if b["status"] == "pending" and b["beneficiary"] == self.world.me]

    def state(self):
        return read_json(os.path.join(self.ws, "state.json"))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


class GenesisTest(unittest.TestCase):
    def harness(self, **kw):
        h = Harness(**kw)
        self.addCleanup(h.close)
        return h

    def assert_sound_run(self, h):
        msg = "stdout:\n%s\nstderr:\n%s" % (h.stdout, h.stderr)
        self.assertEqual(h.code, 0, msg)
        self.assertNotIn("Traceback", h.stderr, msg)
        for line in h.stdout.splitlines():
            self.assertTrue(line.startswith("["), "unprefixed line %r" % line)
        for amount, r, avail in h.world.placed:
            self.assertGreaterEqual(amount, r, "bid below reserve\n" + msg)
            self.assertLessEqual(amount, avail, "bid above available\n" + msg)
        self.assertGreaterEqual(h.world.balance - h.world.held, 0, msg)

    def assert_leaves_bid(self, h):
        self.assertTrue(h.pending(), "no pending bid\n" + h.stdout + h.stderr)
        self.assertIn("bid", h.stdout)

    def test_unix_socket_run_bids_prompts_and_explains(self):
        h = self.harness()
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertIn("[genesis] observed prices", h.stdout)
        self.assertRegex(h.stdout, r"\[genesis\] bid [0-9.]+ for .*reserve [0-9.]+")
        self.assertIn("no LLM: 503", h.stdout)
        self.assertEqual(len(h.calls("POST", "/human/prompt")), 1)
        content = h.world.prompts[0]["content"]
        self.assertEqual(content["kind"], "economy_report")
        self.assertIn("cpu_seconds: price 1", content["text"])
        self.assertIn("population: 1 alive, 1 dead", content["text"])
        self.assertLessEqual(micros(h.world.prompts[0]["bid_amount"]), h.world.balance)
        # Every money-moving POST carried an Idempotency-Key.
        for r in h.calls("POST", "/market/bid"):
            self.assertTrue(r[2].get("Idempotency-Key"))

    def test_tcp_run_leaves_bid(self):
        h = self.harness(tcp=True)
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)

    def test_llm_answer_becomes_the_prompt(self):
        h = self.harness(llm="ok", responses=[
            {"prompt": 9, "interesting": 7, "useful": 5, "understandable": 8,
             "reason": "clear numbers", "credits_awarded": "1000", "rated_at": 1}])
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        chat = h.calls("POST", "/v1/chat/completions")
        self.assertEqual(len(chat), 1)
        self.assertEqual(chat[0][3]["model"], "test-model")
        self.assertIn("clear numbers", json.dumps(chat[0][3]["messages"]))
        self.assertEqual(h.world.prompts[0]["content"]["kind"], "llm")
        self.assertEqual(h.world.prompts[0]["content"]["title"], "Why prices fall")
        self.assertIn("new rating of prompt 9", h.stdout)

    def test_quota_exhausted_falls_back(self):
        h = self.harness(llm=402)
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertIn("insufficient_quota", h.stdout)
        self.assertEqual(h.world.prompts[0]["content"]["kind"], "economy_report")

    def test_prompt_failure_still_leaves_bid(self):
        h = self.harness(prompt_status=500)
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertIn("prompt failed", h.stdout)

    def test_no_prompt_without_attention(self):
        h = self.harness(bundle={"cpu_seconds": 1.0, "memory_mb": 128.0, "tokens": 0.0,
                                 "attention_share": 0.0, "wall_seconds": None})
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertEqual(h.calls("POST", "/human/prompt"), [])
        self.assertEqual(h.calls("POST", "/v1/chat/completions"), [])
        self.assertIn("no prompt: this bundle has no attention", h.stdout)

    def test_below_reserve_refusal_is_rebid_at_reserve(self):
        h = self.harness(below_reserve_first=True)
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertIn("refused below reserve", h.stdout)
        self.assertGreaterEqual(len(h.calls("POST", "/market/bid")), 2)

    def test_low_balance_bids_what_it_can_afford(self):
        # 20 credits: the attention bundle (reserve 15.3 + margin) and the plain one
        # are affordable only leanly; the prompt bid must leave the bid's hold intact.
        h = self.harness(balance="16")
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertEqual(h.world.spawns, [])
        self.assertIn("no spawn", h.stdout)

    def test_very_low_balance_falls_back_to_minimal_bundle(self):
        h = self.harness(balance="7")  # plain bundle reserve 13.8, minimal 6.9
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertEqual(h.pending()[0]["bundle"]["memory_mb"], 64)
        self.assertIn("cannot afford", h.stdout)

    def test_cannot_afford_any_reserve(self):
        h = self.harness(balance="1")
        h.run()
        self.assert_sound_run(h)
        self.assertEqual(h.pending(), [])
        self.assertIn("will die", h.stdout)

    def test_existing_pending_bid_is_kept(self):
        pending = {"id": 90, "payer": 3, "beneficiary": 3, "status": "pending", "amount": "30",
                   "placed_cycle": 41, "won_cycle": None, "execution_id": None,
                   "expiry_cycle": 61, "bundle": {"cpu_seconds": 1.0, "memory_mb": 128.0,
                                                  "tokens": 0.0, "attention_share": 0.0,
                                                  "wall_seconds": None}}
        h = self.harness(pending=[pending])
        h.run()
        self.assert_sound_run(h)
        self.assertEqual(h.calls("POST", "/market/bid"), [])
        self.assertIn("already pending", h.stdout)

    def test_state_persists_across_runs(self):
        h = self.harness()
        h.run()
        self.assert_sound_run(h)
        first = h.state()
        self.assertEqual(first["executions"], 1)
        # The next execution: the bid won, a new cycle.
        for b in h.world.bids:
            if b["status"] == "pending":
                b.update(status="won", won_cycle=43, execution_id=18)
                h.world.held -= micros(b["amount"])
                h.world.balance -= micros(b["amount"])
        h.world.cycle = 43
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        second = h.state()
        self.assertEqual(second["executions"], 2)
        self.assertEqual(len(second["balances"]), 2)
        self.assertEqual(second["agent_id"], 3)
        self.assertFalse([f for f in os.listdir(h.ws) if ".tmp." in f])

    def test_spawns_when_rich_with_a_varied_strategy(self):
        h = self.harness(balance="5000", state={"agent_id": 3, "executions": 5})
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertEqual(len(h.world.spawns), 1, h.stdout)
        spawn = h.world.spawns[0]
        files = {f["path"]: f["content"] for f in spawn["files"]}
        self.assertEqual(set(files), {"main.py", "services.py", "strategy.json"})
        parent = read_json(os.path.join(GENESIS, "strategy.json"))
        child = json.loads(files["strategy.json"])
        self.assertEqual(child["parent"], 3)
        self.assertEqual(child["generation"], 1)
        varied = [k for k in ("bid_margin", "attention_every", "attention_share",
                              "prompt_bid_share", "runway_executions", "tokens")
                  if child[k] != parent[k]]
        self.assertTrue(varied, child)
        self.assertIn("bid", spawn)
        self.assertGreater(micros(spawn["initial_credits"]), micros(spawn["bid"]["amount"]))
        # The parent keeps well over half of its money.
        self.assertGreater(h.world.balance - h.world.held, micros("2500"))
        self.assertIn("spawned agent 51", h.stdout)
        self.assertIn("51", h.state()["children"])

        # The child runs from exactly those files and greets its parent.
        c = self.harness(balance=spawn["initial_credits"], strategy=child)
        for name, text in files.items():
            with open(os.path.join(c.ws, name), "w") as f:
                f.write(text)
        c.world.me = 51
        c.world.won_bid.update(payer=51, beneficiary=51)
        c.run()
        self.assert_sound_run(c)
        self.assertTrue(c.pending(), c.stdout)
        self.assertEqual(len(c.world.messages), 1, c.stdout)
        self.assertEqual(c.world.messages[0]["to"], 3)
        self.assertIn("[genesis.1]", c.stdout)

    def test_two_children_differ(self):
        strategies = []
        for cycle in (42, 97):
            h = self.harness(balance="5000", state={"agent_id": 3, "executions": 5})
            h.world.cycle = cycle
            h.run()
            self.assert_sound_run(h)
            strategies.append(json.loads(
                {f["path"]: f["content"] for f in h.world.spawns[0]["files"]}["strategy.json"]))
        self.assertNotEqual(strategies[0], strategies[1])

    def test_no_spawn_when_not_affordable(self):
        h = self.harness(balance="150", state={"agent_id": 3, "executions": 5})
        h.run()
        self.assert_sound_run(h)
        self.assert_leaves_bid(h)
        self.assertEqual(h.world.spawns, [])
        self.assertRegex(h.stdout, r"no spawn: available [0-9.]+ < fee")

    def test_parent_tips_a_child_that_earned(self):
        child = {"id": 51, "status": "alive", "death_reason": None, "parent": 3,
                 "lineage": [3], "total_credits_earned": "300"}
        h = self.harness(balance="2000", extra_agents=[child],
                         state={"agent_id": 3, "executions": 3,
                                "children": {"51": {"earned": "100"}}},
                         strategy={"spawn": False})
        h.run()
        self.assert_sound_run(h)
        self.assertEqual(len(h.world.transfers), 1, h.stdout)
        self.assertEqual(h.world.transfers[0]["to"], 51)
        self.assertLessEqual(micros(h.world.transfers[0]["amount"]), 5 * MICRO)
        self.assertTrue(h.calls("POST", "/economic/transfer")[0][2].get("Idempotency-Key"))

    def test_service_unreachable_exits_cleanly(self):
        h = self.harness()
        h.url = "unix://" + os.path.join(h.dir, "missing.sock")
        start = time.time()
        h.run()
        self.assertEqual(h.code, 0, h.stderr)
        self.assertLess(time.time() - start, 20)
        self.assertIn("prices failed", h.stdout)
        self.assertTrue(os.path.exists(os.path.join(h.ws, "state.json")))

    def test_without_a_service_url_it_says_so(self):
        h = self.harness()
        h.url = ""
        h.run()
        self.assertEqual(h.code, 0, h.stderr)
        self.assertIn("cannot reach the System Service", h.stdout)

    def test_cpu_use_is_small(self):
        h = self.harness()
        before = os.times()
        h.run()
        after = os.times()
        self.assert_sound_run(h)
        used = (after.children_user - before.children_user
                + after.children_system - before.children_system)
        self.assertLess(used, 1.0)


class StdlibOnlyTest(unittest.TestCase):
    def test_no_third_party_imports(self):
        local = {"services", "main"}
        allowed = set(sys.stdlib_module_names) | local
        found = []
        for root, _, names in os.walk(AGENTS):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                with open(path) as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        mods = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        mods = [node.module]
                    else:
                        continue
                    for m in mods:
                        if m.split(".")[0] not in allowed:
                            found.append("%s: %s" % (path, m))
        self.assertEqual(found, [])
        self.assertGreater(len(allowed), 100)

    def test_template_file_set(self):
        names = sorted(n for n in os.listdir(GENESIS) if n != "__pycache__")
        self.assertEqual(names, sorted(TEMPLATE_FILES))
        read_json(os.path.join(GENESIS, "strategy.json"))


if __name__ == "__main__":
    unittest.main()
