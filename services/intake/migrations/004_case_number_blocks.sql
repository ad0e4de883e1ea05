-- Case numbers are reserved in blocks (services/intake/adapters/case_numbers.py): case_numbers.last is the
-- last number reserved for the day, each block is recorded here, and a number reserved and never used (an
-- instance stopped with part of its block, a report whose transaction failed) is a gap one can account for.
CREATE TABLE IF NOT EXISTS case_number_blocks (
    day          date        NOT NULL,
    first        integer     NOT NULL,
    last         integer     NOT NULL,
    reserved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, first)
);

-- Numbers of the recorded blocks that no case carries (blocks reserved before this migration are not recorded).
CREATE OR REPLACE VIEW case_number_gaps AS
SELECT b.day, n AS sequence, c.case_no
FROM case_number_blocks b, generate_series(b.first, b.last) AS n,
     LATERAL (SELECT to_char(b.day, 'YYYYMMDD') || '-' || lpad(n::text, greatest(4, length(n::text)), '0') AS case_no) c
WHERE NOT EXISTS (SELECT 1 FROM reports r WHERE r.case_no = c.case_no);
