-- Retention deletes processed-event marks and finished delivery records by age, a batch at a
-- time: each batch finds its oldest rows through these indexes instead of a scan.
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);
CREATE INDEX deliveries_finished_updated_at_idx ON deliveries (updated_at) WHERE state <> 'pending';
