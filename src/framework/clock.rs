//! Where the framework reads the time: the system clock in production, a clock the tests move
//! by hand (as mini-redis's tests pause and advance tokio's time) so that expiry, tidy and
//! rollback are tested without sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The time source of a [`Backend`](super::Backend): read once per request into
/// [`Request::now`](super::Request::now). Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Mutex<SystemTime>>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: SystemTime) -> Clock {
        Clock(Some(Arc::new(Mutex::new(start))))
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        match &self.0 {
            None => SystemTime::now(),
            Some(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock forward by `by`. The system clock cannot be moved: returns false.
    pub fn advance(&self, by: Duration) -> bool {
        let Some(at) = &self.0 else {
            return false;
        };
        let mut at = at.lock().unwrap_or_else(|e| e.into_inner());
        *at += by;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_its_clones_follow() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = Clock::manual(start);
        let seen_by_requests = clock.clone();
        assert_eq!(seen_by_requests.now(), start);
        assert!(clock.advance(Duration::from_secs(90)));
        assert_eq!(seen_by_requests.now(), start + Duration::from_secs(90));
    }

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        assert!(!clock.advance(Duration::from_secs(1)));
        let before = SystemTime::now();
        assert!(clock.now() >= before);
    }
}
