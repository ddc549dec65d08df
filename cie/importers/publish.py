"""Publish an importer's events to Kafka, file by file, with an import ledger.

The ledger is a compacted topic with one entry per source file and content hash,
written only after every event of that file was acknowledged. A second run
reads all files again (an importer's events may depend on earlier files) but
produces only files that have no ledger entry, so re-running an import is cheap
and adds nothing to the log. ``force=True`` produces everything again; the
projections then skip the repeated event ids.
"""

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from cie.crypto.events import seal_records
from cie.crypto.keyring import KeyRing
from cie.kafka import EventPublisher, ensure_topics, read_ledger, write_ledger
from cie.settings import Settings
from schemas.events import EventBase

log = logging.getLogger(__name__)


@dataclass
class ImportSummary:
    source: str
    files: int = 0
    files_skipped: int = 0  # already in the ledger
    events_published: int = 0
    events_by_type: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)  # the importer's own counters
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events_published / self.seconds if self.seconds else 0.0


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish_files(settings: Settings, source: str, files: Iterable[Path],
                  events_for_file: Callable[[Path], list[EventBase]], force: bool = False,
                  progress: bool = True) -> ImportSummary:
    """Publish the events of each file unless the ledger already lists that file's content.

    Personal fields are sealed under each customer's data key before they reach
    Kafka. Events of erased customers are not published, and are counted.
    """
    topics = ensure_topics(settings)
    ledger = {} if force else read_ledger(settings, topics)
    publisher = EventPublisher(settings)
    keyring = KeyRing(settings)
    summary = ImportSummary(source)
    files = list(files)
    started = time.perf_counter()

    bar = tqdm(files, desc=f"import {source}", unit="file", disable=not progress)
    for path in bar:
        ledger_key = f"{source}:{path.name}:{file_sha256(path)}"
        events = events_for_file(path)
        summary.files += 1
        if ledger_key in ledger:
            summary.files_skipped += 1
            continue

        batch = seal_records(keyring, (event.to_record() for event in events))
        for record in batch.records:
            publisher.publish(record)
            summary.events_by_type[record["event_type"]] += 1
        publisher.flush()
        summary.events_published += len(batch.records)
        summary.counts["events_of_erased_customers_skipped"] += len(batch.erased)
        write_ledger(publisher.producer, topics, ledger_key, {"events": len(events)})
        bar.set_postfix(events=summary.events_published)
    publisher.flush()
    keyring.close()

    summary.seconds = time.perf_counter() - started
    log.info("imported %d %s files (%d already in the ledger), published %d events in %.1f s",
             summary.files, source, summary.files_skipped, summary.events_published, summary.seconds)
    return summary


def import_retail(settings: Settings, data_dir: Path, force: bool = False, progress: bool = True) -> ImportSummary:
    """Publish the Online Retail files in ``data_dir`` as events."""
    from cie.importers.retail import RetailImporter, retail_files

    importer = RetailImporter()
    summary = publish_files(settings, "online_retail", retail_files(data_dir), importer.events_for_file, force, progress)
    summary.counts.update(importer.counts)
    summary.counts["customers"] = len(importer.customers)
    summary.counts["products"] = len(importer.products)
    return summary


def import_reviews(settings: Settings, data_root: Path, force: bool = False, progress: bool = True) -> ImportSummary:
    """Publish the review data sets under ``data_root`` as review events."""
    from cie.importers.reviews import ReviewImporter, review_files

    importer = ReviewImporter()
    summary = publish_files(settings, "reviews", review_files(data_root), importer.events_for_file, force, progress)
    summary.counts.update(importer.counts)
    return summary
