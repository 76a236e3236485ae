//! Wall-clock time as the store records it: Unix milliseconds (and
//! nanoseconds, for file times). One place, so every module agrees on how a
//! time before the epoch or a clock error reads (as 0).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Since the epoch; zero for a time before it (a clock set back that far).
fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// Now, in Unix nanoseconds.
pub fn now_ns() -> u128 {
    unix_ns(SystemTime::now())
}

/// `t` in Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> i64 {
    i64::try_from(since_epoch(t).as_millis()).unwrap_or(i64::MAX)
}

/// `t` in Unix nanoseconds.
pub fn unix_ns(t: SystemTime) -> u128 {
    since_epoch(t).as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_before_read_as_zero() {
        assert_eq!(unix_ms(UNIX_EPOCH), 0);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(unix_ns(UNIX_EPOCH + Duration::from_nanos(7)), 7);
        assert_eq!(unix_ms(UNIX_EPOCH + Duration::from_millis(1_234)), 1_234);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
        assert!(now_ns() / 1_000_000 >= now_ms() as u128 - 1_000);
    }
}
