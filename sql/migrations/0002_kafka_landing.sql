-- Where a SENT row landed on Kafka, from the broker's acknowledgement (CONTRACT §2, §6).
ALTER TABLE event_outbox
    ADD COLUMN kafka_partition integer,
    ADD COLUMN kafka_offset bigint;
