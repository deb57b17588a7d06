"""Events in and out: files and generator, Kafka producer, streaming ingest, scorer."""
