//! Provider and engine `tracing` events in a seed's trace.
//!
//! `LE_SIM_LOG=<filter>` (an `EnvFilter`, e.g.
//! `leader_election_kubernetes=debug,leader_election_abstractions=debug`)
//! puts every event the filter lets through into the trace of the seed
//! running on the same thread, stamped with simulated time like the
//! scenario's own lines. Meant for replaying one failing seed with
//! `--trace`; without the variable nothing is installed and runs cost
//! nothing extra.

use std::cell::RefCell;
use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::checker::Checker;

thread_local! {
    static CURRENT: RefCell<Option<Checker>> = const { RefCell::new(None) };
}

/// Makes `checker` the trace that events on this thread go to, until the
/// returned guard drops.
pub(crate) fn attach(checker: &Checker) -> Attached {
    CURRENT.with(|c| *c.borrow_mut() = Some(checker.clone()));
    Attached
}

/// Detaches the thread's checker on drop.
pub(crate) struct Attached;

impl Drop for Attached {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Installs the layer if `LE_SIM_LOG` is set; returns whether it did.
pub fn install_from_env() -> Result<bool, String> {
    let Ok(filter) = std::env::var("LE_SIM_LOG") else {
        return Ok(false);
    };
    let filter = EnvFilter::try_new(&filter)
        .map_err(|e| format!("LE_SIM_LOG must be a tracing filter: {e}"))?;
    tracing_subscriber::registry()
        .with(ToTrace.with_filter(filter))
        .try_init()
        .map_err(|e| format!("LE_SIM_LOG: cannot install the log layer: {e}"))?;
    Ok(true)
}

struct ToTrace;

/// A span's fields, formatted once when it opens.
struct SpanFields(String);

impl<S> Layer<S> for ToTrace
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut fields = String::new();
            attrs.record(&mut Fields(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        CURRENT.with(|c| {
            if let Some(checker) = c.borrow().as_ref() {
                let meta = event.metadata();
                let mut line = format!("  log {} {}", meta.level(), meta.target());
                if let Some(scope) = ctx.event_scope(event) {
                    for span in scope.from_root() {
                        let _ = write!(line, " {}{{", span.name());
                        if let Some(fields) = span.extensions().get::<SpanFields>() {
                            line.push_str(fields.0.trim_start());
                        }
                        line.push('}');
                    }
                }
                line.push(':');
                event.record(&mut Fields(&mut line));
                checker.note(line);
            }
        });
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
