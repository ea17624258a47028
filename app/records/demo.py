"""Demo cases and tracing requests for `flask seed demo` (a living system for newcomers).

A few hundred cases registered by the demo caseworkers and supervisor in their camps,
and tracing requests registered by the demo tracing officer. The children carry names
from the traditions met in today's emergencies (Somali, Arabic, Nuer and Dinka,
Congolese), with chain names, estimated ages and consent mostly given. About half of
the tracing requests look for children who truly are registered as cases, written the
way a different person in a different place would write them: other spellings
(Maxamed / Mohamed, Xasan / Hassan), names in another order, parts dropped, ages
estimated a year or two off, the inquirer's own spelling of the parents' names. The
others look for children nobody registered, some of them namesakes of registered
children, so the matching engine has true pairs to find and look-alikes to reject.

Everything is generated from a fixed seed and keyed by source ids starting with
"demo-": running the seeder again adds only what is missing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select

from app.extensions import db
from app.seeding import register_demo_seeder

SOURCE_PREFIX = "demo-"
SEED = 20240604
CASES = 300
TRACING_REQUESTS = 70
TRUE_PAIRS = 36  # tracing requests whose first child sought is a registered case

# (username, number of cases, traditions they mostly meet)
CASE_OWNERS = (
    ("caseworker", 110, ("somali", "somali", "somali", "arabic")),
    ("caseworker2", 90, ("congolese", "congolese", "nuer_dinka", "sudanese")),
    ("save_caseworker", 80, ("arabic", "arabic", "somali")),
    ("supervisor", 20, ("somali", "arabic", "nuer_dinka", "congolese")),
)
TRACING_OWNER = "tracer"


@dataclass(frozen=True)
class Tradition:
    boys: tuple[str, ...]
    girls: tuple[str, ...]
    family: tuple[str, ...]          # family names; empty: chain names (father's, grandfather's name)
    nationality: str
    languages: tuple[str, ...]
    religion: str
    camps: tuple[str, ...]           # where the children live now
    origins: tuple[str, ...]         # where they were separated (codes of the demo locations)
    phone_prefix: str


TRADITIONS = {
    "somali": Tradition(
        boys=("Mohamed", "Abdi", "Hassan", "Abdirahman", "Yusuf", "Ahmed", "Liban", "Khadar", "Bashir",
              "Mukhtar", "Warsame", "Abdullahi", "Ismail", "Omar", "Ali", "Farah", "Hussein", "Osman"),
        girls=("Fadumo", "Hodan", "Ayaan", "Ubah", "Hamdi", "Sahra", "Deeqa", "Nasra", "Farhiya", "Halima",
               "Khadija", "Amina", "Asha", "Idil", "Fartun", "Sagal", "Maryan", "Hawa"),
        family=(), nationality="somali", languages=("somali",), religion="islam",
        camps=("ET-SO-DOLLO-MELKADIDA", "ET-SO-DOLLO-KOBE", "ET-SO-DOLLO-HILAWEYN", "ET-SO-DOLLO-BURAMINO"),
        origins=("SO-BY-BAIDOA", "SO-GE-DOLOW", "SO-BY", "SO-GE"), phone_prefix="+2526"),
    "arabic": Tradition(
        boys=("Mohammed", "Ahmad", "Omar", "Yousef", "Khaled", "Hamza", "Ali", "Hussein", "Abdulrahman",
              "Mahmoud", "Ibrahim", "Bilal", "Tariq", "Anas", "Zaid"),
        girls=("Fatima", "Aisha", "Maryam", "Zainab", "Noor", "Rahaf", "Lina", "Hala", "Rania", "Amal", "Layla",
               "Sara", "Huda", "Asmaa", "Rim"),
        family=("al-Hariri", "Al Masri", "Haddad", "Khalil", "al-Zoubi", "Hamdan", "Nasser", "Darwish",
                "Abu Zeid", "el-Khatib", "al-Rifai", "Qasem", "Shaheen"),
        nationality="syrian", languages=("arabic",), religion="islam",
        camps=("JO-MA-ZAATARI", "JO-ZA-AZRAQ"), origins=("JO-MA", "JO-ZA"), phone_prefix="+9627"),
    "sudanese": Tradition(
        boys=("Mohamed", "Adam", "Ibrahim", "Osman", "Abdelrahman", "Musa", "Ismail", "Hamid"),
        girls=("Fatima", "Amna", "Hawa", "Khadija", "Zahra", "Mariam", "Asha", "Sumaya"),
        family=(), nationality="sudanese", languages=("arabic",), religion="islam",
        camps=("SS-UN-MABAN-DORO",), origins=("SS-UN-MABAN", "SS-UN"), phone_prefix="+2499"),
    "nuer_dinka": Tradition(
        boys=("Gatluak", "Gatdet", "Riek", "Chuol", "Deng", "Garang", "Akol", "Majok", "Bol", "Kuol", "Atem",
              "Machar", "Mayen", "Lual"),
        girls=("Nyakim", "Nyaruach", "Nyabol", "Achol", "Ayen", "Nyandeng", "Abuk", "Aluel", "Nyagoa", "Adut"),
        family=(), nationality="south_sudanese", languages=("nuer", "dinka"), religion="christianity",
        camps=("SS-UN-MABAN-DORO",), origins=("SS-UN", "SS-UN-MABAN"), phone_prefix="+2119"),
    "congolese": Tradition(
        boys=("Amani", "Baraka", "Patrick", "Fiston", "Jean-Pierre", "Dieudonné", "Bahati", "Emmanuel",
              "Josué", "Christian", "Gloire", "Prince"),
        girls=("Neema", "Imani", "Furaha", "Mapendo", "Grace", "Espérance", "Christelle", "Sifa", "Riziki",
               "Divine", "Merveille", "Chance"),
        family=("Mukendi", "Kalala", "Bisimwa", "Mugisho", "Ilunga", "Kasongo", "Mbuyi", "Lukusa", "Mwamba",
                "Kambale", "Muhindo", "Kahindo", "Paluku"),
        nationality="congolese_drc", languages=("swahili", "lingala"), religion="christianity",
        camps=("CD-NK-GOMA",), origins=("CD-NK", "CD-NK-GOMA"), phone_prefix="+2439"),
}

# How another person writes the same name (DOMAIN.md, "Names in the field").
SPELLINGS = {
    "Mohamed": ("Maxamed", "Muhammad", "Mohammed", "Mhd"), "Mohammed": ("Muhammad", "Mohamed", "Mohamad"),
    "Abdi": ("Cabdi",), "Hassan": ("Xasan", "Hasan"), "Abdirahman": ("Cabdiraxmaan", "Abdul Rahman"),
    "Yusuf": ("Yuusuf", "Yousef"), "Ahmed": ("Axmed", "Ahmad"), "Hussein": ("Xuseen", "Husein"),
    "Abdullahi": ("Cabdullaahi", "Abdallah"), "Ismail": ("Ismaaciil", "Ismael"), "Omar": ("Cumar", "Umar"),
    "Ali": ("Cali",), "Osman": ("Cismaan", "Othman"), "Khadar": ("Khadr",), "Farah": ("Faarax",),
    "Fadumo": ("Faadumo", "Fatuma", "Fatima"), "Halima": ("Xaliimo", "Halimo"), "Khadija": ("Khadiija", "Hadija"),
    "Amina": ("Aamina",), "Asha": ("Caasha", "Aisha"), "Hawa": ("Xaawo", "Hawo"), "Sahra": ("Sahro", "Zahra"),
    "Maryan": ("Maryam", "Mariam"), "Hamdi": ("Xamdi",), "Nasra": ("Nasro",),
    "Ahmad": ("Ahmed",), "Yousef": ("Yusuf", "Youssef"), "Khaled": ("Khalid",), "Hamza": ("Hamzah",),
    "Abdulrahman": ("Abd al-Rahman", "Abdelrahman"), "Mahmoud": ("Mahmud",), "Ibrahim": ("Ebrahim",),
    "Fatima": ("Fatma", "Fatimah"), "Aisha": ("Aysha", "Aicha"), "Maryam": ("Mariam",), "Zainab": ("Zeinab",),
    "Noor": ("Nour",), "Layla": ("Leila", "Laila"), "Huda": ("Houda",), "Asmaa": ("Asma",),
    "al-Hariri": ("Hariri", "el Hariri"), "Al Masri": ("al-Masri", "Masri"), "al-Zoubi": ("Zoubi", "Al Zu'bi"),
    "Abu Zeid": ("Abuzeid", "Abu Zaid"), "el-Khatib": ("Khatib", "al Khateeb"), "Qasem": ("Kassem", "Qasim"),
    "Gatluak": ("Gatluok",), "Chuol": ("Chol",), "Nyakim": ("Nyakiem",), "Nyaruach": ("Nyaruac",),
    "Deng": ("Dheng",), "Achol": ("Acol",), "Nyandeng": ("Nyandeeng",), "Kuol": ("Kuel",),
    "Dieudonné": ("Dieudonne",), "Espérance": ("Esperance",), "Josué": ("Josue",), "Mukendi": ("Mukendji",),
    "Bisimwa": ("Bisimua",), "Kambale": ("Kambali",), "Muhindo": ("Muhíndo",),
    "Adam": ("Adem",), "Musa": ("Moussa",), "Abdelrahman": ("Abdul Rahman", "Abderahman"), "Amna": ("Amina",),
}
SEPARATION_CAUSES = ("conflict", "conflict", "displacement", "displacement", "lost_in_transit", "death_of_caregiver",
                     "abduction", "natural_disaster", "unknown")
CONCERNS = ("physical_violence", "child_labour", "medical_condition", "disability", "detention", "trafficking",
            "armed_group_association")
CLOSURE_REASONS = ("Reunified with the family; follow-up visit done.", "The child turned 18.",
                   "Transferred to another agency's programme.")


def _today() -> date:
    return date.today()


def _spell(rng: random.Random, name: str) -> str:
    """Sometimes the same name written another way."""
    variants = SPELLINGS.get(name)
    return rng.choice(variants) if variants and rng.random() < 0.75 else name


def _person(rng: random.Random, tradition: Tradition, sex: str) -> tuple[str, str, str]:
    """(given name, second name, third name): a chain of father and grandfather, or a family name."""
    given = rng.choice(tradition.boys if sex == "male" else tradition.girls)
    father = rng.choice(tradition.boys)
    if tradition.family:
        return given, father if rng.random() < 0.4 else "", rng.choice(tradition.family)
    return given, father, rng.choice(tradition.boys)


def _full_name(rng: random.Random, tradition: Tradition, sex: str) -> str:
    """An adult's name as usually written: given name and family name, or given name and father's name."""
    given, second, third = _person(rng, tradition, sex)
    return f"{given} {third if tradition.family else second}"


def _phone(rng: random.Random, tradition: Tradition) -> str:
    return tradition.phone_prefix + "".join(str(rng.randrange(10)) for _ in range(8))


def _case_data(rng: random.Random, tradition: Tradition) -> dict:
    today = _today()
    sex = "male" if rng.random() < 0.52 else "female"
    given, second, third = _person(rng, tradition, sex)
    age = rng.randint(2, 17)
    separated = today - timedelta(days=rng.randint(60, 1400))
    data = {
        "name_first": given, "name_last": third, "sex": sex, "age": age,
        "nationality": tradition.nationality, "language": [rng.choice(tradition.languages)],
        "religion": tradition.religion,
        "location_current": rng.choice(tradition.camps),
        "location_separation": rng.choice(tradition.origins),
        "date_of_separation": separated.isoformat(), "date_of_separation_approximate": rng.random() < 0.6,
        "separation_cause": rng.choice(SEPARATION_CAUSES),
        "mother_name": _full_name(rng, tradition, "female"),
        "father_name": " ".join(p for p in (second or rng.choice(tradition.boys), third) if p),
        "protection_concerns": ["unaccompanied" if rng.random() < 0.45 else "separated"]
        + ([rng.choice(CONCERNS)] if rng.random() < 0.3 else []),
        "risk_level": rng.choice(("low", "medium", "medium", "high")),
        "consent_for_tracing": rng.random() < 0.87,
    }
    if second:
        data["name_middle"] = second
    if rng.random() < 0.35:
        birth = today.replace(year=today.year - age) - timedelta(days=rng.randint(0, 360))
        data["date_of_birth"], data["date_of_birth_approximate"] = birth.isoformat(), rng.random() < 0.7
    else:
        data["age_is_estimated"] = True
    if rng.random() < 0.15:
        data["name_nickname"] = rng.choice(("Abdi Yare", "Dhagax", "Junior", "Toto", "Nuuro", "Shorty", "Babu"))
    if rng.random() < 0.3:
        data["phone"] = _phone(rng, tradition)
    if data["consent_for_tracing"]:
        data["consent_given_by"] = "child" if age >= 12 and rng.random() < 0.5 else "caregiver"
    if rng.random() < 0.5:
        relation_sex = rng.choice(("male", "female"))
        data["family_details"] = [{
            "relation": rng.choice(("sibling", "aunt_uncle", "grandparent")),
            "relation_name": _full_name(rng, tradition, relation_sex),
            "relation_age": rng.randint(3, 70), "relation_is_alive": rng.choice(("yes", "unknown")),
        }]
    return data


def _trace_of_case(rng: random.Random, case: dict) -> dict:
    """The same child as an inquirer describes them: other spellings, order, estimated age."""
    first, middle, last = case["name_first"], case.get("name_middle", ""), case.get("name_last", "")
    style = rng.random()
    if style < 0.35:      # another spelling of each part
        names = {"name_first": _spell(rng, first), "name_last": _spell(rng, last)}
        if middle and rng.random() < 0.5:
            names["name_middle"] = _spell(rng, middle)
    elif style < 0.6:     # chain written in another order (father's name first, given name last)
        names = {"name_first": _spell(rng, middle or last), "name_last": _spell(rng, first)}
    elif style < 0.8:     # only the given name and the father's name
        names = {"name_first": _spell(rng, first), "name_last": _spell(rng, middle or last)}
    else:                 # the nickname the family uses, and the family name
        names = {"name_first": _spell(rng, first), "name_last": last or middle}
        if case.get("name_nickname"):
            names["name_nickname"] = case["name_nickname"]
    separated = date.fromisoformat(case["date_of_separation"]) + timedelta(days=rng.randint(-90, 90))
    trace = {
        **{k: v for k, v in names.items() if v},
        "sex": case["sex"],
        # The family gives the age the child had when they were separated, often rounded.
        "age": max(0, min(30, case["age"] - rng.choice((0, 1, 1, 2)) + rng.choice((-1, 0, 0, 1)))),
        "location_separation": case.get("location_separation"),
        "date_of_separation": min(separated, _today()).isoformat(), "date_of_separation_approximate": True,
        "nationality": case["nationality"], "language": case["language"],
        "mother_name": " ".join(_spell(rng, part) for part in case["mother_name"].split()),
        "father_name": " ".join(_spell(rng, part) for part in case["father_name"].split()),
    }
    if rng.random() < 0.3:
        trace["distinguishing_features"] = rng.choice((
            "Small scar above the left eyebrow.", "Missing front tooth.", "Birthmark on the right arm.",
            "Walks with a slight limp.", "Stutters when nervous."))
    return {k: v for k, v in trace.items() if v not in (None, "")}


def _unregistered_trace(rng: random.Random, tradition: Tradition, namesake_of: dict | None = None) -> dict:
    today = _today()
    sex = namesake_of["sex"] if namesake_of else ("male" if rng.random() < 0.5 else "female")
    given, second, third = _person(rng, tradition, sex)
    if namesake_of:  # same common given name, different family, different age
        given = namesake_of["name_first"]
    trace = {"name_first": given, "name_last": third or second, "sex": sex, "age": rng.randint(1, 17),
             "location_separation": rng.choice(tradition.origins), "nationality": tradition.nationality,
             "date_of_separation": (today - timedelta(days=rng.randint(60, 1400))).isoformat(),
             "date_of_separation_approximate": True,
             "father_name": " ".join(p for p in (second or rng.choice(tradition.boys), third) if p)}
    return trace


def _request_data(rng: random.Random, tradition: Tradition, child: dict, relation: str) -> dict:
    names = {"mother": child.get("mother_name"), "father": child.get("father_name")}
    inquirer = names.get(relation) or _full_name(rng, tradition, "female" if rng.random() < 0.6 else "male")
    latest = date.fromisoformat(child.get("date_of_separation") or _today().isoformat())
    inquiry = min(_today(), latest + timedelta(days=rng.randint(10, 400)))
    data = {
        "relation_name": " ".join(_spell(rng, part) for part in inquirer.split()),
        "relation": relation, "relation_location_current": rng.choice(tradition.camps + tradition.origins),
        "inquiry_date": inquiry.isoformat(), "consent_for_tracing": rng.random() < 0.95,
    }
    if rng.random() < 0.7:
        data["relation_phone"] = _phone(rng, tradition)
    return data


def demo_records() -> tuple[list[tuple[str, str, dict]], list[tuple[str, str, dict, list[dict]]]]:
    """Every demo case (source id, owner, data) and tracing request (source id, owner, data, traces)."""
    cases, requests, _pairs = _generate()
    return cases, requests


def true_pairs() -> dict[str, str]:
    """{trace source id: case source id} of the demo traces that truly are registered children
    (for checking what the matching engine proposes on demo data)."""
    return _generate()[2]


def _generate():
    rng = random.Random(SEED)
    cases: list[tuple[str, str, dict, str]] = []
    for username, count, traditions in CASE_OWNERS:
        for _ in range(count):
            tradition_name = rng.choice(traditions)
            cases.append((f"{SOURCE_PREFIX}case-{len(cases) + 1:04d}", username,
                          _case_data(rng, TRADITIONS[tradition_name]), tradition_name))
    requests = []
    pairs: dict[str, str] = {}
    paired = rng.sample(range(len(cases)), TRUE_PAIRS)
    for number in range(TRACING_REQUESTS):
        if number < TRUE_PAIRS:
            case_source_id, _owner, child, tradition_name = cases[paired[number]]
            pairs[f"{SOURCE_PREFIX}tr-{number + 1:03d}/1"] = case_source_id
            traces = [_trace_of_case(rng, child)]
            if rng.random() < 0.25:  # a sibling who is not registered anywhere
                traces.append(_unregistered_trace(rng, TRADITIONS[tradition_name]))
        else:
            tradition_name = rng.choice(tuple(TRADITIONS))
            namesake = rng.choice([c for c in cases if c[3] == tradition_name] or [None])
            traces = [_unregistered_trace(rng, TRADITIONS[tradition_name],
                                          namesake[2] if namesake and rng.random() < 0.5 else None)]
            child = traces[0]
        relation = rng.choice(("mother", "mother", "father", "aunt_uncle", "sibling", "grandparent"))
        requests.append((f"{SOURCE_PREFIX}tr-{number + 1:03d}", TRACING_OWNER,
                         _request_data(rng, TRADITIONS[tradition_name], child, relation), traces))
    return [(sid, owner, data) for sid, owner, data, _t in cases], requests, pairs


def seed_demo_records() -> str:
    """Demo seeder (after the forms and demo locations): cases and tracing requests, once."""
    from app.users.models import User
    from cases.models import Case
    from cases.operations import close_case, create_case
    from forms.operations import FormValidationError
    from tracing.models import TracingRequest
    from tracing.operations import create_tracing_request
    users = {u.username: u for u in db.session.execute(select(User).where(
        User.username.in_([o for o, _n, _t in CASE_OWNERS] + [TRACING_OWNER]))).scalars()}
    existing_cases = set(db.session.scalars(select(Case.source_id).where(Case.source_id.startswith(SOURCE_PREFIX))))
    existing_requests = set(db.session.scalars(select(TracingRequest.source_id).where(
        TracingRequest.source_id.startswith(SOURCE_PREFIX))))
    cases, requests = demo_records()
    rng = random.Random(SEED + 1)
    created = closed = skipped = 0
    for source_id, owner, data in cases:
        close_now = rng.random() < 0.08
        user = users.get(owner)
        if source_id in existing_cases:
            continue
        if user is None:
            skipped += 1
            continue
        try:
            with db.session.begin_nested():
                case = create_case(user, data, source_id=source_id)
        except FormValidationError:
            skipped += 1  # an administrator changed the forms: this demo child does not fit any more
            continue
        created += 1
        if close_now:
            close_case(case, user, rng.choice(CLOSURE_REASONS))
            closed += 1
    requests_created = traces_created = 0
    for source_id, owner, data, traces in requests:
        user = users.get(owner)
        if source_id in existing_requests:
            continue
        if user is None:
            skipped += 1
            continue
        try:
            with db.session.begin_nested():
                create_tracing_request(user, data, traces, source_id=source_id,
                                       trace_source_ids=[f"{source_id}/{n}" for n in range(1, len(traces) + 1)])
        except FormValidationError:
            skipped += 1
            continue
        requests_created += 1
        traces_created += len(traces)
    db.session.flush()
    line = (f"Demo records: {created} case(s) ({closed} closed) and {requests_created} tracing request(s) "
            f"with {traces_created} child(ren) sought added; {len(existing_cases)} case(s) and "
            f"{len(existing_requests)} request(s) were already there.")
    if skipped:
        line += f" {skipped} left out (missing demo user or changed forms)."
    return line


register_demo_seeder(20, seed_demo_records)
