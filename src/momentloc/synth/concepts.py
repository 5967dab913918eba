"""The concepts of the synthetic worlds: actions (with verb synonyms and inflections), objects
(with noun synonyms) and which (action, object) pairs are valid event types.

Three domains, one per preset: ``household`` (Charades-STA-like indoor activities),
``outdoor`` (ActivityNet-like open-domain activities) and ``cooking`` (TACoS-like kitchen
tasks). A verb is written ``"base/third person/gerund/past"``; synonyms are separated by
``;``. An action may name its ``reverse``: the two share their begin/end prototypes swapped
(open vs close), so that only the direction of change tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMS = ("base", "third", "gerund", "past")


@dataclass(frozen=True)
class Action:
    """An action concept.

    Attributes:
        name: canonical name (``"pick up"``).
        verbs: synonym verb phrases, each ``(base, third person, gerund, past)``; the first is
            the canonical one.
        reverse: name of the action whose begin and end prototypes this one swaps.
    """

    name: str
    verbs: tuple[tuple[str, str, str, str], ...]
    reverse: str | None = None


@dataclass(frozen=True)
class Thing:
    """An object concept: synonym nouns (first canonical) and the actions that apply to it."""

    name: str
    nouns: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Domain:
    name: str
    actions: tuple[Action, ...]
    objects: tuple[Thing, ...]

    def event_types(self) -> list[tuple[int, int]]:
        """Valid ``(action index, object index)`` pairs, in object then action order."""
        index = {a.name: i for i, a in enumerate(self.actions)}
        return [(index[a], o) for o, thing in enumerate(self.objects) for a in thing.actions]


def _action(name: str, verbs: str, reverse: str | None = None) -> Action:
    forms = []
    for phrase in verbs.split(";"):
        parts = tuple(p.strip() for p in phrase.split("/"))
        if len(parts) != 4:
            raise ValueError(f"verb {phrase!r} needs base/third/gerund/past")
        forms.append(parts)
    return Action(name, tuple(forms), reverse)


def _thing(nouns: str, actions: str) -> Thing:
    names = tuple(n.strip() for n in nouns.split(";"))
    return Thing(names[0], names, tuple(a.strip() for a in actions.split(",")))


def _domain(name: str, actions: list[Action], things: list[Thing]) -> Domain:
    known = {a.name for a in actions}
    for a in actions:
        if a.reverse is not None and a.reverse not in known:
            raise ValueError(f"{name}: {a.name!r} reverses unknown action {a.reverse!r}")
    for t in things:
        unknown = set(t.actions) - known
        if unknown:
            raise ValueError(f"{name}: object {t.name!r} names unknown actions {sorted(unknown)}")
    return Domain(name, tuple(actions), tuple(things))


HOUSEHOLD = _domain("household", [
    _action("open", "open/opens/opening/opened; pull open/pulls open/pulling open/pulled open"),
    _action("close", "close/closes/closing/closed; shut/shuts/shutting/shut", reverse="open"),
    _action("pick up", "pick up/picks up/picking up/picked up; grab/grabs/grabbing/grabbed; "
                       "take/takes/taking/took"),
    _action("put down", "put down/puts down/putting down/put down; set down/sets down/setting down/"
                        "set down; place/places/placing/placed", reverse="pick up"),
    _action("turn on", "turn on/turns on/turning on/turned on; switch on/switches on/switching on/"
                       "switched on"),
    _action("turn off", "turn off/turns off/turning off/turned off; switch off/switches off/"
                        "switching off/switched off", reverse="turn on"),
    _action("hold", "hold/holds/holding/held; carry/carries/carrying/carried"),
    _action("wash", "wash/washes/washing/washed; rinse/rinses/rinsing/rinsed"),
    _action("wipe", "wipe/wipes/wiping/wiped; clean/cleans/cleaning/cleaned"),
    _action("throw", "throw/throws/throwing/threw; toss/tosses/tossing/tossed"),
    _action("eat", "eat/eats/eating/ate; bite into/bites into/biting into/bit into"),
    _action("drink from", "drink from/drinks from/drinking from/drank from; sip from/sips from/"
                          "sipping from/sipped from"),
    _action("read", "read/reads/reading/read; flip through/flips through/flipping through/"
                    "flipped through"),
    _action("sit on", "sit on/sits on/sitting on/sat on; sit down on/sits down on/sitting down on/"
                      "sat down on"),
    _action("lie on", "lie on/lies on/lying on/lay on; lie down on/lies down on/lying down on/"
                      "lay down on"),
    _action("look at", "look at/looks at/looking at/looked at; watch/watches/watching/watched"),
    _action("fold", "fold/folds/folding/folded; fold up/folds up/folding up/folded up"),
    _action("fix", "fix/fixes/fixing/fixed; repair/repairs/repairing/repaired"),
    _action("play with", "play with/plays with/playing with/played with"),
    _action("tidy", "tidy/tidies/tidying/tidied; straighten/straightens/straightening/straightened"),
], [
    _thing("door; doorway", "open, close, look at, fix, wipe"),
    _thing("window", "open, close, look at, wipe, fix"),
    _thing("cup; mug", "pick up, put down, hold, wash, drink from"),
    _thing("glass", "pick up, put down, hold, wash, drink from, wipe"),
    _thing("book; novel", "open, close, pick up, put down, hold, read, throw"),
    _thing("laptop; computer", "open, close, turn on, turn off, look at, pick up, put down, fix, wipe"),
    _thing("phone; cellphone", "pick up, put down, hold, look at, play with, turn on, turn off, throw"),
    _thing("light; lamp", "turn on, turn off, look at, fix"),
    _thing("television; tv", "turn on, turn off, look at, fix, wipe"),
    _thing("refrigerator; fridge", "open, close, wipe, look at"),
    _thing("towel; cloth", "pick up, put down, hold, fold, throw, wash"),
    _thing("blanket; quilt", "pick up, put down, fold, hold, throw, tidy"),
    _thing("clothes; laundry", "pick up, put down, fold, wash, hold, throw, tidy"),
    _thing("pillow; cushion", "pick up, put down, hold, throw, tidy, lie on, play with"),
    _thing("sandwich", "pick up, put down, hold, eat"),
    _thing("bed", "sit on, lie on, tidy"),
    _thing("chair; seat", "sit on, pick up, fix, wipe"),
    _thing("sofa; couch", "sit on, lie on, tidy, wipe"),
    _thing("box; package", "open, close, pick up, put down, hold, throw, look at"),
    _thing("shoes; sneakers", "pick up, put down, hold, tidy, throw, wash"),
    _thing("bag; backpack", "open, close, pick up, put down, hold, throw"),
    _thing("dishes; plates", "wash, wipe, pick up, put down, hold, tidy"),
    _thing("table; desk", "wipe, tidy, fix"),
    _thing("picture; photo", "look at, hold, pick up, put down, fix"),
    _thing("broom", "pick up, put down, hold, play with"),
])

OUTDOOR = _domain("outdoor", [
    _action("play", "play/plays/playing/played; perform on/performs on/performing on/performed on"),
    _action("ride", "ride/rides/riding/rode; cruise on/cruises on/cruising on/cruised on"),
    _action("throw", "throw/throws/throwing/threw; toss/tosses/tossing/tossed"),
    _action("catch", "catch/catches/catching/caught; receive/receives/receiving/received",
            reverse="throw"),
    _action("kick", "kick/kicks/kicking/kicked; boot/boots/booting/booted"),
    _action("lift", "lift/lifts/lifting/lifted; raise/raises/raising/raised"),
    _action("lower", "lower/lowers/lowering/lowered; drop/drops/dropping/dropped", reverse="lift"),
    _action("wash", "wash/washes/washing/washed; scrub/scrubs/scrubbing/scrubbed"),
    _action("brush", "brush/brushes/brushing/brushed; comb/combs/combing/combed"),
    _action("paint", "paint/paints/painting/painted; coat/coats/coating/coated"),
    _action("climb", "climb/climbs/climbing/climbed; scale/scales/scaling/scaled"),
    _action("push", "push/pushes/pushing/pushed; shove/shoves/shoving/shoved"),
    _action("pull", "pull/pulls/pulling/pulled; drag/drags/dragging/dragged", reverse="push"),
    _action("jump on", "jump on/jumps on/jumping on/jumped on; bounce on/bounces on/bouncing on/"
                       "bounced on"),
    _action("hit", "hit/hits/hitting/hit; strike/strikes/striking/struck"),
    _action("hold", "hold/holds/holding/held; carry/carries/carrying/carried"),
    _action("fix", "fix/fixes/fixing/fixed; adjust/adjusts/adjusting/adjusted"),
], [
    _thing("guitar", "play, hold, lift, fix"),
    _thing("piano; keyboard", "play, push, fix"),
    _thing("drums; drum set", "play, hit, fix"),
    _thing("violin; fiddle", "play, hold, fix, lift"),
    _thing("bike; bicycle", "ride, push, pull, wash, fix, lift, paint"),
    _thing("horse; pony", "ride, brush, wash, pull, hold"),
    _thing("skateboard", "ride, kick, lift, hold, throw, fix"),
    _thing("ball", "throw, catch, kick, hit, hold, lift"),
    _thing("frisbee; disc", "throw, catch, hold"),
    _thing("weights; barbell", "lift, lower, hold, push, pull"),
    _thing("crate", "lift, lower, push, pull, paint, hold, kick"),
    _thing("car; vehicle", "wash, push, fix, paint"),
    _thing("dog; puppy", "wash, brush, hold, lift, pull"),
    _thing("hair", "brush, wash, fix, pull"),
    _thing("wall", "paint, climb, hit, wash"),
    _thing("fence", "paint, climb, fix, push"),
    _thing("ladder", "climb, lift, lower, hold, push, pull"),
    _thing("tree", "climb, hit"),
    _thing("trampoline", "jump on, push, pull, fix"),
    _thing("mower; lawnmower", "push, pull, fix, lift, wash"),
    _thing("rope", "pull, hold, climb, throw, lift"),
    _thing("tire; tyre", "push, pull, lift, lower, throw, kick, fix"),
    _thing("sled; sleigh", "ride, pull, push, lift"),
])

COOKING = _domain("cooking", [
    _action("take out", "take out/takes out/taking out/took out; get out/gets out/getting out/"
                        "got out; fetch/fetches/fetching/fetched"),
    _action("put away", "put away/puts away/putting away/put away; store/stores/storing/stored",
            reverse="take out"),
    _action("wash", "wash/washes/washing/washed; rinse/rinses/rinsing/rinsed"),
    _action("peel", "peel/peels/peeling/peeled; skin/skins/skinning/skinned"),
    _action("cut", "cut/cuts/cutting/cut; slice/slices/slicing/sliced; chop/chops/chopping/chopped"),
    _action("dry", "dry/dries/drying/dried; towel off/towels off/toweling off/toweled off"),
    _action("throw away", "throw away/throws away/throwing away/threw away; discard/discards/"
                          "discarding/discarded"),
    _action("open", "open/opens/opening/opened; unwrap/unwraps/unwrapping/unwrapped"),
    _action("close", "close/closes/closing/closed; seal/seals/sealing/sealed", reverse="open"),
    _action("squeeze", "squeeze/squeezes/squeezing/squeezed; juice/juices/juicing/juiced"),
    _action("stir", "stir/stirs/stirring/stirred; mix/mixes/mixing/mixed"),
    _action("pour", "pour/pours/pouring/poured; empty/empties/emptying/emptied"),
    _action("fry", "fry/fries/frying/fried; sear/sears/searing/seared"),
    _action("season", "season/seasons/seasoning/seasoned; salt/salts/salting/salted"),
    _action("grate", "grate/grates/grating/grated; shred/shreds/shredding/shredded"),
    _action("crack", "crack/cracks/cracking/cracked; break/breaks/breaking/broke"),
], [
    _thing("kiwi", "take out, wash, peel, cut, throw away"),
    _thing("cucumber", "take out, put away, wash, peel, cut, grate"),
    _thing("carrot", "take out, put away, wash, peel, cut, grate, fry"),
    _thing("onion", "take out, peel, cut, fry, throw away"),
    _thing("orange", "take out, peel, cut, squeeze"),
    _thing("lemon", "take out, cut, squeeze, throw away"),
    _thing("potato", "take out, wash, peel, cut, fry, grate, season"),
    _thing("bread; loaf", "take out, put away, cut, open, throw away"),
    _thing("egg", "take out, crack, fry, stir, season, throw away"),
    _thing("pineapple", "take out, peel, cut, throw away"),
    _thing("mango", "take out, wash, peel, cut"),
    _thing("leek", "take out, wash, cut, fry"),
    _thing("ginger", "take out, peel, grate, cut"),
    _thing("avocado", "take out, cut, peel, throw away"),
    _thing("cutting board; chopping board", "take out, put away, wash, dry"),
    _thing("knife", "take out, put away, wash, dry"),
    _thing("plate; dish", "take out, put away, wash, dry"),
    _thing("bowl", "take out, put away, wash, dry, stir"),
    _thing("pan; skillet", "take out, put away, wash, dry"),
    _thing("pot; saucepan", "take out, put away, wash, stir, pour"),
    _thing("package; packet", "take out, open, close, throw away"),
    _thing("jar", "take out, open, close, pour, put away"),
    _thing("milk", "take out, open, pour, put away"),
    _thing("oil", "take out, pour, put away"),
])

DOMAINS = {d.name: d for d in (HOUSEHOLD, OUTDOOR, COOKING)}
