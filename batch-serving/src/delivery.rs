//! Routing a batch's outputs (or its failure) back to the calls it came from.

use crate::error::Failure;
use crate::queue::Route;

/// Hands each call its own outputs, one lock and at most one wake-up per call
/// per batch: consecutive items of the same call are delivered as one run.
pub(crate) fn deliver<O, E>(routes: Vec<Route<O, E>>, result: Result<Vec<O>, Failure<E>>) {
    match result {
        Ok(outputs) => {
            let mut outputs = outputs.into_iter();
            for_each_run(&routes, |route, len| {
                route
                    .request
                    .deliver(route.index, outputs.by_ref().take(len), len);
            });
        }
        Err(failure) => {
            for_each_run(&routes, |route, len| route.request.fail(&failure, len));
        }
    }
}

/// Calls `f(first_route, run_length)` for each maximal run of routes that
/// belong to the same call and carry consecutive indices.
fn for_each_run<O, E>(routes: &[Route<O, E>], mut f: impl FnMut(&Route<O, E>, usize)) {
    let mut start = 0;
    while start < routes.len() {
        let first = &routes[start];
        let mut end = start + 1;
        while end < routes.len()
            && std::sync::Arc::ptr_eq(&routes[end].request, &first.request)
            && routes[end].index == first.index + (end - start)
        {
            end += 1;
        }
        f(first, end - start);
        start = end;
    }
}
