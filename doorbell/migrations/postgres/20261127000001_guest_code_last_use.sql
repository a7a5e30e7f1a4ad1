-- When a guest code was last used, so that a used-up code can be pruned some time after its last
-- use; and an index for the check at the door, which reads only codes still valid.
ALTER TABLE guest_codes ADD COLUMN last_used_at BIGINT;
CREATE INDEX guest_codes_by_end ON guest_codes (valid_until);
