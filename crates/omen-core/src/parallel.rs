//! Two pieces of work at once. CI machines have at least two cores; Omen's heaviest steps (a
//! suite's durations, a window's results) split into independent halves.

/// Run `first` on this thread and `second` on another, and return both results. A panic in
/// `second` is a bug: it is resumed here rather than losing half the work.
pub fn join<A, B>(first: impl FnOnce() -> A, second: impl FnOnce() -> B + Send) -> (A, B)
where
    B: Send,
{
    std::thread::scope(|scope| {
        let other = scope.spawn(second);
        let a = first();
        match other.join() {
            Ok(b) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_are_returned_in_order() {
        let v: Vec<u64> = (1..=1000).collect();
        let (lo, hi) = v.split_at(500);
        let (a, b) = join(|| lo.iter().sum::<u64>(), || hi.iter().sum::<u64>());
        assert_eq!((a, b), (125_250, 375_250));
    }

    #[test]
    fn a_panic_on_the_other_thread_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| join(|| 1, || -> u32 { panic!("second half") }));
        let panic = caught.expect_err("the panic was resumed");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"second half"));
    }
}
