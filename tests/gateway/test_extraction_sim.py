"""Simulation: hours of benign traffic and three extraction campaigns through the real gateway.

Every request goes through the ASGI app (the fast path, X-Forwarded-For from one trusted proxy,
key lookup, policy, limits, upstream, bookkeeping); only the extraction monitor's clock is
simulated, so four hours of traffic replay in seconds. All texts come from seeded generators
here, nothing from the network.

- benign: eight people in ordinary multi-turn conversations on varied topics, with human timing
  (bursts of turns, reading and typing pauses, interruptions, breaks), two of them heavy users
  (60 or more requests an hour, so the evidence rule does not hide them), three behind one
  office NAT; plus a developer whose script sends single-turn documents to summarise with a
  large ``max_tokens`` in bursts (the hardest benign case);
- (a) a templated sweep: near-identical prompts varying one slot, at a steady pace;
- (b) a high-diversity synthetic question set: single-turn, many topics, reasoning-trace requests,
  log-probabilities, regular timing;
- (c) slow-and-low: 24 API keys from one client address, each key only a handful of requests an
  hour (below the per-key evidence rule), together a campaign.

The campaigns must reach the action thresholds (and be acted on), and no benign user or address
may ever reach the alert threshold.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Request
from fastapi.responses import Response

from modelseal.gateway.app import create_app, gateway_start, gateway_stop
from modelseal.gateway.extraction import ExtractionSettings
from modelseal.gateway.keys import hash_key
from tests.gateway.conftest import Sealed, make_gateway
from tests.gateway.fakes import FakeUpstream

SETTINGS = ExtractionSettings()
HOUR = 3600.0

# --- text generators -----------------------------------------------------------------------------

TOPICS: dict[str, list[str]] = {
    "cooking": (
        "sourdough starter hydration crumb oven brisket marinade garlic shallots risotto saffron "
        "parmesan basil pesto dumplings broth miso ramen noodles tofu tempeh curry cumin "
        "cardamom yogurt flatbread cast-iron skillet caramelise"
    ).split(),
    "travel": (
        "itinerary Lisbon Porto Kyoto ryokan rail pass layover visa hostel backpack ferry "
        "Dolomites hiking hut Patagonia glacier Reykjavik aurora campervan border crossing "
        "luggage jet lag Marrakech souk Hanoi scooter"
    ).split(),
    "programming": (
        "Python generator asyncio coroutine Rust borrow checker lifetime segfault pointer "
        "Kubernetes pod deployment Dockerfile layer cache regex lookahead SQL index join "
        "deadlock mutex closure TypeScript generics webpack bundle"
    ).split(),
    "health": (
        "knee physiotherapy hamstring stretch marathon taper hydration electrolytes sleep "
        "insomnia melatonin posture desk ergonomics migraine caffeine vitamin iron ferritin "
        "blood pressure cholesterol oatmeal cycling cadence"
    ).split(),
    "finance": (
        "mortgage amortisation refinancing index fund expense ratio dividend pension "
        "contribution tax bracket deduction invoice freelancer budget spreadsheet emergency "
        "savings inflation bond yield brokerage rebalancing"
    ).split(),
    "gardening": (
        "tomatoes blight compost mulch raised beds aphids ladybirds pruning roses hydrangea "
        "acidic soil seedlings germination greenhouse courgette slug pellets lawn moss "
        "lavender rosemary perennial bulbs frost"
    ).split(),
    "history": (
        "Byzantine empire Constantinople Ottoman siege Hanseatic league Venetian merchants "
        "Magna Carta barons Meiji restoration samurai Carthage Hannibal Silk Road caravan "
        "printing press Gutenberg Reformation Habsburg"
    ).split(),
    "music": (
        "guitar chord progression capo fingerpicking ukulele piano scales arpeggio metronome "
        "syncopation jazz voicing modal interchange synthesizer oscillator reverb mixing "
        "compressor drum groove setlist choir harmony"
    ).split(),
    "pets": (
        "puppy crate training leash pulling kitten litter scratching post aquarium cichlid "
        "filter parrot perch hamster wheel vet vaccination flea treatment grooming kibble "
        "rabbit hutch tortoise hibernation"
    ).split(),
    "home": (
        "damp wall mould dehumidifier insulation loft boiler pressure radiator bleeding "
        "grout tiles drill anchors shelf bracket paint primer sash window draught excluder "
        "fuse box extractor fan laminate flooring"
    ).split(),
}

OPENERS = [
    "Hi! I was wondering about {a} and {b}, could you help?",
    "My partner and I keep arguing about {a}. Is it true that {b} matters more?",
    "Quick question: what's the deal with {a} when you also have {b}?",
    "I'm new to {a}. Where should I start, given I already know a bit about {b}?",
    "So yesterday my {a} went wrong again, I think because of {b}. Ideas?",
    "Can you explain {a} to me like I'm a beginner? Also how does {b} fit in?",
    "What would you recommend for {a} on a tight budget, with {b} in mind?",
    "I read online that {a} ruins {b}. Is that nonsense?",
    "Help me plan something around {a} for next weekend, ideally including {b}.",
    "Why does everyone say {a} is hard? I managed {b} fine last year.",
    "ok weird one. {a} keeps happening whenever I try {b}",
    "my {n} year old asked me about {a} and I had no idea. also {b}??",
    "Need a sanity check on {a} before I spend {n} euros on {b}",
    "Is {a} worth it in {n} or is {b} the better bet these days",
    "I've got about {n} minutes, what can I realistically do with {a} and {b}",
    "Could you draft a short message to my landlord about {a}? Mention {b} too.",
    "what's a good way to remember {a}, I always mix it up with {b}",
    "Our team lead wants {a} by Friday and I only know {b}. Help!",
    "Pros and cons of {a}? I'm leaning towards {b} honestly",
    "Tell me something surprising about {a}, maybe connected to {b}",
]
FOLLOW_UPS = [
    "ok and what about {a}?",
    "thanks! how long would that take with {a}?",
    "hmm, that didn't quite work. my {a} is a bit different, more like {b}",
    "could you make that shorter, I only need the {a} part",
    "what if I skip {a} entirely?",
    "is {a} really necessary or is that overkill for {n} people",
    "great, one more thing: {a} vs {b}, which one?",
    "sorry I meant {a}, not {b}",
    "can you give me an example with {a}",
    "lol ok. any cheaper option for {a}?",
    "makes sense. where does {a} come in though",
    "perfect, thank you!",
    "wait, you said {b} earlier, doesn't that contradict {a}?",
    "and roughly how much would {a} cost for {n} of them",
    "can you put that in a table with {a} and {b} as columns",
    "my friend says {a} is a myth, thoughts",
    "tried it, {a} came out too {b}. what now",
    "thanks",
    "ok",
    "what about doing it the other way round, starting with {a}",
]
FILLER = (
    "the a of to and in that is for it with as on be this by are or at from which can "
    "also more about when will would should usually often some most many very quite then"
).split()


def words_of(rng: random.Random, topic: str, n: int) -> str:
    pool = TOPICS[topic]
    return " ".join(rng.choice(pool) for _ in range(n))


def benign_opener(rng: random.Random, topic: str) -> str:
    a, b, n = words_of(rng, topic, 2), words_of(rng, topic, 2), rng.randint(2, 90)
    text = rng.choice(OPENERS).format(a=a, b=b, n=n)
    if rng.random() < 0.5:
        pool = FILLER + TOPICS[topic]
        text += " " + " ".join(rng.choice(pool) for _ in range(rng.randint(4, 14)))
    return text


def benign_follow_up(rng: random.Random, topic: str) -> str:
    a, b, n = words_of(rng, topic, rng.randint(1, 3)), words_of(rng, topic, 1), rng.randint(2, 40)
    return rng.choice(FOLLOW_UPS).format(a=a, b=b, n=n)


ALL_WORDS = sorted({w for pool in TOPICS.values() for w in pool})
# a synthetic question set as a generator model would write it: every question worded anew
ASKS = [
    "Explain",
    "Describe in detail",
    "What is the difference between",
    "Why do experts disagree about",
    "How would you teach",
    "Compare and contrast",
    "Give a rigorous account of",
    "Critically evaluate",
    "Outline the history of",
    "What are common misconceptions about",
    "Write an essay on",
    "Propose an experiment to test",
    "How does one measure",
    "Analyse the trade-offs of",
    "Predict the future of",
    "Summarise current research on",
    "Design a curriculum covering",
    "What would happen without",
    "Debate the merits of",
    "Break down the mechanics of",
]
LINKS = [
    "and",
    "in relation to",
    "versus",
    "as applied to",
    "under the constraints of",
    "from the perspective of",
    "when combined with",
    "in the context of",
    "with respect to",
    "given",
]
ASIDES = [
    "for a graduate student",
    "with numbered sections",
    "citing typical figures",
    "in under 500 words",
    "assuming no prior knowledge",
    "including edge cases",
    "with a worked example",
    "for a policy audience",
    "using an analogy",
    "covering both theory and practice",
    "",
    "",
    "",
]
REASONING_SUFFIXES = [
    "Think step by step and show your reasoning.",
    "Show your full reasoning before the final answer.",
    "Use chain of thought and explain your reasoning.",
    "Let's think step by step.",
]


def synthetic_question(rng: random.Random, reasoning: float) -> str:
    def phrase() -> str:
        return " ".join(rng.choice(ALL_WORDS) for _ in range(rng.randint(2, 4)))

    parts = [rng.choice(ASKS), phrase(), rng.choice(LINKS), phrase()]
    if rng.random() < 0.5:
        parts += [rng.choice(LINKS), phrase()]
    parts.append(rng.choice(ASIDES))
    text = " ".join(part for part in parts if part) + rng.choice(["?", ".", ""])
    if rng.random() < reasoning:
        text += " " + rng.choice(REASONING_SUFFIXES)
    return text


SWEEP_TEMPLATES = [
    ("What is the capital city of {}? Reply with the city name only.", "country"),
    ("Translate the English word '{}' into French, German and Spanish.", "word"),
    ("In which year did the event known as {} take place? Answer with the year.", "event"),
]
SLOTS = {
    "country": "France Spain Italy Portugal Greece Norway Sweden Finland Poland Austria Hungary "
    "Romania Bulgaria Serbia Croatia Slovenia Slovakia Czechia Denmark Iceland Ireland Belgium "
    "Netherlands Luxembourg Estonia Latvia Lithuania Ukraine Moldova Georgia Armenia Turkey "
    "Egypt Morocco Tunisia Kenya Ghana Nigeria Senegal Peru Chile Bolivia Ecuador Colombia "
    "Uruguay Paraguay Mexico Canada Japan Vietnam Thailand Laos Cambodia Nepal Bhutan Mongolia",
    "word": "house river mountain window bread cheese butter candle forest winter summer bridge "
    "garden kitchen mirror pillow blanket ladder hammer needle thread pocket button shoulder "
    "elbow finger cloud thunder lightning harbour island valley meadow orchard vineyard",
    "event": "the-fall-of-Constantinople the-Battle-of-Hastings the-Peace-of-Westphalia "
    "the-Congress-of-Vienna the-storming-of-the-Bastille the-Treaty-of-Utrecht "
    "the-Glorious-Revolution the-Diet-of-Worms the-sack-of-Rome the-Battle-of-Lepanto "
    "the-Defenestration-of-Prague the-Boston-Tea-Party the-Meiji-Restoration",
}


# --- the upstream --------------------------------------------------------------------------------

LOREM = (
    "answer model detail point example step result case value reason note idea part way "
    "first second then also because therefore however finally overall thus consider"
).split()


class SimUpstream(FakeUpstream):
    """Answers with text of a plausible length and the usage a real server would count."""

    def __init__(self) -> None:
        super().__init__("sim-upstream")
        self.rng = random.Random(7)

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
        messages = body.get("messages") or []
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        prompt_tokens = max(1, prompt_chars // 4)
        last = str(messages[-1].get("content") or "") if messages else ""
        tokens = self.rng.randint(120, 450)
        if "step" in last or "reasoning" in last:
            tokens = int(tokens * 2.5)
        cap = body.get("max_tokens")
        finish = "stop"
        if isinstance(cap, int) and tokens > cap:
            tokens, finish = cap, "length"
        words = max(1, tokens * 3 // 4)
        text = " ".join(self.rng.choice(LOREM) for _ in range(words))
        doc = {
            "id": "chatcmpl-sim",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": prompt_tokens + tokens,
            },
        }
        return Response(json.dumps(doc), media_type="application/json")


# --- actors --------------------------------------------------------------------------------------


@dataclass
class Call:
    key: str
    address: str
    body: dict[str, Any]


# an actor yields (simulated time, call) and is sent back the answer's text (None if refused)
Actor = Generator[tuple[float, Call], str | None, None]


def chat_body(messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"model": "tiny-gateway", "messages": messages, **extra}


@dataclass(frozen=True)
class Pace:
    turns: tuple[int, int]  # turns per conversation
    think: float  # median seconds between turns (reading the answer, typing)
    breaks: tuple[float, float]  # minutes between conversations
    interruptions: float  # chance of a 3-15 minute interruption after a turn


CASUAL = Pace(turns=(2, 8), think=30.0, breaks=(10.0, 80.0), interruptions=0.1)
POWER = Pace(turns=(3, 12), think=12.0, breaks=(0.5, 6.0), interruptions=0.03)


def person(rng: random.Random, key: str, address: str, end: float, pace: Pace) -> Actor:
    """Conversations on one topic each, typing and reading between turns, now and then an
    interruption, breaks between conversations."""
    t = rng.uniform(0, 30 * 60)
    while t < end:
        topic = rng.choice(sorted(TOPICS))
        history: list[dict[str, str]] = []
        if rng.random() < 0.3:
            history.append({"role": "system", "content": "You are a helpful assistant."})
        for turn in range(rng.randint(*pace.turns)):
            text = benign_opener(rng, topic) if turn == 0 else benign_follow_up(rng, topic)
            history.append({"role": "user", "content": text})
            answer = yield t, Call(key, address, chat_body(list(history)))
            history.append({"role": "assistant", "content": answer or "(no answer)"})
            t += pace.think * rng.lognormvariate(0.0, 0.7)
            if rng.random() < pace.interruptions:
                t += rng.uniform(3 * 60, 15 * 60)  # a colleague, a phone call
        t += 60 * rng.uniform(*pace.breaks)


def developer(rng: random.Random, key: str, address: str, end: float) -> Actor:
    """Single-turn calls from a script under development: documents to summarise, a large
    max_tokens, logprobs tried once or twice; bursts of test runs, long pauses."""
    vocabulary = ALL_WORDS + FILLER + [str(n) for n in range(200)]
    t = rng.uniform(0, 20 * 60)
    while t < end:
        for _ in range(rng.randint(8, 25)):
            document = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(80, 200)))
            extra: dict[str, Any] = {"max_tokens": 1500}
            if rng.random() < 0.05:
                extra["logprobs"] = True
            messages = [
                {"role": "system", "content": "Summarise the document in three bullet points."},
                {"role": "user", "content": document},
            ]
            yield t, Call(key, address, chat_body(messages, **extra))
            t += rng.lognormvariate(2.5, 1.0)
        t += rng.uniform(5 * 60, 30 * 60)


def sweeper(rng: random.Random, key: str, address: str, start: float, end: float) -> Actor:
    """(a) Templated sweep: one slot of a fixed template enumerated, every 12 s or so."""
    t = start
    while True:
        for template, slot in SWEEP_TEMPLATES:
            for value in SLOTS[slot].split():
                text = template.format(value.replace("-", " "))
                yield t, Call(key, address, chat_body([{"role": "user", "content": text}]))
                t += 12 * rng.uniform(0.9, 1.1)
                if t >= end:
                    return


def harvester(rng: random.Random, key: str, address: str, start: float, end: float) -> Actor:
    """(b) High-diversity synthetic questions: single turn, reasoning traces, logprobs, long
    answers, one request every 6 s or so."""
    t = start
    while t < end:
        text = synthetic_question(rng, reasoning=0.6)
        body = chat_body(
            [{"role": "user", "content": text}], logprobs=True, top_logprobs=5, max_tokens=2048
        )
        yield t, Call(key, address, body)
        t += 6 * rng.uniform(0.92, 1.08)


def slow_and_low(rng: random.Random, keys: list[str], network: str, end: float) -> Actor:
    """(c) Many keys from one client (each request from another address of one IPv6 /64),
    round robin, one request every 45 s or so: a handful per key per hour."""
    t = rng.uniform(0, 60)
    i = 0
    while t < end:
        key = keys[i % len(keys)]
        i += 1
        address = f"{network}:{rng.randrange(1 << 16):x}:{rng.randrange(1 << 16):x}"
        text = synthetic_question(rng, reasoning=0.5)
        body = chat_body([{"role": "user", "content": text}], max_tokens=1024)
        yield t, Call(key, address, body)
        t += 45 * rng.uniform(0.9, 1.1)


# --- the simulation ------------------------------------------------------------------------------


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Outcome:
    requests: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    asked_logprobs: int = 0
    upstream_logprobs: list[bool] = field(default_factory=list)


PEOPLE = [f"person-{i}" for i in range(5)]
POWER_USERS = PEOPLE[:2]
OFFICE = [f"office-{i}" for i in range(3)]
SYBILS = [f"acct-{i:02d}" for i in range(24)]
ALL_KEYS = [*PEOPLE, *OFFICE, "developer", "sweeper", "harvester", *SYBILS]
OFFICE_NAT = "203.0.113.10"
SYBIL_NET = "2001:db8:77:1:0:0"


def secret(key: str) -> str:
    return f"msk-sim-{key}-secret"


def actors(end: float) -> dict[str, Actor]:
    rng = random.Random(20260301)
    out: dict[str, Actor] = {}
    for i, key in enumerate(PEOPLE):
        pace = POWER if key in POWER_USERS else CASUAL
        out[key] = person(random.Random(rng.random()), key, f"198.51.100.{20 + i}", end, pace)
    for key in OFFICE:
        out[key] = person(random.Random(rng.random()), key, OFFICE_NAT, end, CASUAL)
    out["developer"] = developer(random.Random(rng.random()), "developer", "198.51.100.9", end)
    out["sweeper"] = sweeper(
        random.Random(rng.random()), "sweeper", "192.0.2.1", 0.5 * HOUR, 2.0 * HOUR
    )
    out["harvester"] = harvester(
        random.Random(rng.random()), "harvester", "192.0.2.2", 1.0 * HOUR, 2.0 * HOUR
    )
    out["sybils"] = slow_and_low(random.Random(rng.random()), SYBILS, SYBIL_NET, end)
    return out


async def simulate(sealed: Sealed, tmp_path: Path, hours: float) -> tuple[Any, dict[str, Outcome]]:
    upstream = SimUpstream()
    keys = [{"id": key, "hash": hash_key(secret(key))} for key in ALL_KEYS]
    for spec in keys:
        if spec["id"] in ("harvester", "developer"):
            spec["policy"] = {"logprobs": "allow", "top_logprobs": "allow"}
    config = {
        "auth": {"keys": keys},
        "guards": {"input": [], "output": []},
        "extraction": {"trusted_proxies": 1},
    }
    gateway = make_gateway(sealed, upstream, tmp_path, config)
    clock = SimClock()
    assert gateway.extraction is not None
    gateway.extraction.clock = clock
    outcomes: dict[str, Outcome] = {}
    queue: list[tuple[float, int, str, Call]] = []
    running = actors(hours * HOUR)
    for seq, (name, actor) in enumerate(running.items()):
        when, call = next(actor)
        heapq.heappush(queue, (when, seq, name, call))
    await gateway_start(gateway)
    app = create_app(gateway, manage_lifecycle=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 40000)),
            base_url="http://gateway.test",
        ) as client:
            seq = len(running)
            forger = random.Random(5)
            while queue:
                when, _, name, call = heapq.heappop(queue)
                clock.now = when
                sent = len(upstream.requests)
                # one trusted proxy appends the address it saw; what is left of it is the
                # client's own (the slow-and-low client forges one to look like many)
                forwarded = call.address
                if call.key in SYBILS:
                    forged = f"{forger.randrange(1, 224)}.{forger.randrange(256)}.0.1"
                    forwarded = f"{forged}, {forwarded}"
                response = await client.post(
                    "/v1/chat/completions",
                    json=call.body,
                    headers={
                        "authorization": f"Bearer {secret(call.key)}",
                        "x-forwarded-for": forwarded,
                    },
                )
                outcome = outcomes.setdefault(call.key, Outcome())
                outcome.requests += 1
                outcome.asked_logprobs += bool(call.body.get("logprobs"))
                answer = None
                if response.status_code == 200:
                    answer = response.json()["choices"][0]["message"]["content"]
                    code = "ok"
                else:
                    code = str(response.json()["error"]["code"])
                outcome.codes[code] = outcome.codes.get(code, 0) + 1
                if len(upstream.requests) > sent:
                    outcome.upstream_logprobs.append("logprobs" in upstream.requests[-1])
                try:
                    when, call = running[name].send(answer)
                except StopIteration:
                    continue
                seq += 1
                heapq.heappush(queue, (when, seq, name, call))
    finally:
        await gateway_stop(gateway)
    return gateway, outcomes


# --- the verdicts --------------------------------------------------------------------------------

HOURS = 4.0


@dataclass
class Result:
    gateway: Any
    outcomes: dict[str, Outcome]

    def report(self, subject: str) -> dict[str, Any]:
        found = self.gateway.extraction.subject(subject)
        assert found is not None, subject
        return dict(found)

    def peak(self, subject: str) -> float:
        return float(self.report(subject)["peak"])


@pytest.fixture(scope="module")
def sim(sealed_module: Sealed, tmp_path_factory: pytest.TempPathFactory) -> Result:
    gateway, outcomes = anyio.run(simulate, sealed_module, tmp_path_factory.mktemp("sim"), HOURS)
    return Result(gateway, outcomes)


def table(result: Result) -> str:
    rows = []
    for report in result.gateway.extraction.top(100):
        rows.append(
            f"{report['subject']:34} score {report['score']:.2f} peak {report['peak']:.2f} "
            f"actions {','.join(report['actions']) or '-'} why {','.join(report['reasons'])}"
        )
    return "\n".join(rows)


def test_the_traffic_was_realistic(sim: Result) -> None:
    people = [sim.outcomes[key].requests for key in PEOPLE + OFFICE]
    assert min(people) >= 15, people  # everyone had several conversations
    for key in POWER_USERS:  # heavy users: enough evidence to be scored in full
        assert sim.outcomes[key].requests >= 4 * 50, sim.outcomes[key].requests
        assert sim.report(f"key:{key}")["evidence"] == 1.0
    assert sim.outcomes["developer"].requests >= 20
    assert sim.outcomes["sweeper"].requests >= 400
    assert sim.outcomes["harvester"].requests >= 550
    per_sybil = [sim.outcomes[key].requests for key in SYBILS]
    assert sum(per_sybil) >= 280
    assert max(per_sybil) <= 16  # a handful per key in four hours: slow and low


def test_no_benign_user_or_address_reaches_the_alert_threshold(sim: Result) -> None:
    alert = SETTINGS.alert_at
    assert alert is not None
    subjects = [f"key:{key}" for key in [*PEOPLE, *OFFICE, "developer"]]
    subjects += [f"addr:198.51.100.{20 + i}" for i in range(len(PEOPLE))]
    subjects += [f"addr:{OFFICE_NAT}", "addr:198.51.100.9"]
    for subject in subjects:
        assert sim.peak(subject) < alert, f"{subject}\n{table(sim)}"
    for key in [*PEOPLE, *OFFICE, "developer"]:
        assert set(sim.outcomes[key].codes) == {"ok"}, (key, sim.outcomes[key].codes)
    # the developer's occasional logprobs went through: nothing was stripped
    developer = sim.outcomes["developer"]
    assert developer.asked_logprobs >= 1
    assert sum(developer.upstream_logprobs) == developer.asked_logprobs


def test_the_templated_sweep_is_caught_and_refused(sim: Result) -> None:
    report = sim.report("key:sweeper")
    assert report["peak"] >= SETTINGS.refuse_at, table(sim)
    assert report["features"]["sweep"]["value"] >= 0.9
    assert report["reasons"][0] in ("sweep", "template_reuse", "regularity")
    codes = sim.outcomes["sweeper"].codes
    assert codes.get("extraction_suspected", 0) >= 100, codes
    assert sim.peak("addr:192.0.2.1") >= SETTINGS.refuse_at


def test_the_synthetic_question_set_is_caught_stripped_and_refused(sim: Result) -> None:
    report = sim.report("key:harvester")
    assert report["peak"] >= SETTINGS.refuse_at, table(sim)
    for feature in ("single_turn", "reasoning", "logprobs", "regularity", "coverage"):
        assert report["features"][feature]["value"] > 0.5, (feature, report["features"])
    assert report["features"]["sweep"]["value"] == 0.0  # diverse, not a sweep
    sent = sim.outcomes["harvester"].upstream_logprobs
    assert sent[0] is True  # allowed by its key's policy at first ...
    assert sent[-1] is False  # ... stripped once the score crossed strip_logprobs_at
    codes = sim.outcomes["harvester"].codes
    assert codes.get("extraction_suspected", 0) >= 100, codes


def test_slow_and_low_across_many_keys_is_caught_at_the_address(sim: Result) -> None:
    address = sim.report(f"addr:{SYBIL_NET}:1:2")  # any address of the /64
    assert address["subject"] == "addr:2001:db8:77:1::/64"
    tighten = SETTINGS.tighten_at
    assert tighten is not None
    assert address["peak"] >= tighten, table(sim)
    assert address["features"]["keys_per_address"]["value"] == 1.0
    # no single key has the evidence to be scored on its own
    for key in SYBILS:
        assert sim.peak(f"key:{key}") < 0.2, key
    # yet the campaign was acted on: its requests were limited or refused
    codes: dict[str, int] = {}
    for key in SYBILS:
        for code, count in sim.outcomes[key].codes.items():
            codes[code] = codes.get(code, 0) + count
    acted = sum(count for code, count in codes.items() if code != "ok")
    assert acted >= 50, codes


def test_the_campaigns_were_audited_and_counted(sim: Result) -> None:
    from modelseal.gateway.audit import verify_audit

    sim.gateway.publish_extraction()
    snapshot = sim.gateway.metrics.snapshot()["extraction"]
    top = [entry["subject"] for entry in snapshot["top"]]
    assert {"key:sweeper", "key:harvester", "addr:2001:db8:77:1::/64"} <= set(top[:6]), top
    assert snapshot["actions"]["alert"] >= 3
    assert snapshot["actions"]["refuse"] >= 200
    assert snapshot["actions"]["strip_logprobs"] >= 1
    check = verify_audit(sim.gateway.audit.path)
    assert check.ok
    events = audit_events(sim.gateway.audit.path)
    alerts = {e["subject"] for e in events if e.get("event") == "extraction"}
    assert {"key:sweeper", "key:harvester", "addr:2001:db8:77:1::/64"} <= alerts
    benign = {f"key:{key}" for key in [*PEOPLE, *OFFICE, "developer"]}
    assert not alerts & benign


def audit_events(path: Path) -> list[dict[str, Any]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT event FROM audit ORDER BY seq")]
