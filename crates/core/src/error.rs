//! The one error type of the core crate, and [`chain`], which renders any error with its causes.
//!
//! graphscale's error messages never repeat their `#[source]`: a message says what failed
//! (a file, a field, a request), the source says why, and [`chain`] (or anyhow's `{:#}` in the
//! binary) joins them.

use crate::graph::{NodeKind, Relation};

/// Errors raised while building or validating core domain values.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Two nodes share one id.
    #[error("duplicate node id `{id}`")]
    DuplicateNode {
        /// The repeated id.
        id: String,
    },
    /// An edge names a node that the graph does not have.
    #[error("edge {src} -[{relation}]-> {dst}: unknown node `{missing}`")]
    UnknownNode {
        /// Source of the edge.
        src: String,
        /// Destination of the edge.
        dst: String,
        /// Relation of the edge.
        relation: Relation,
        /// The id that is missing.
        missing: String,
    },
    /// An edge's relation does not fit the kinds of its end points.
    #[error("edge {src} -[{relation}]-> {dst}: a {relation} edge goes from a {want_src} to a {want_dst}, not from a {got_src} to a {got_dst}")]
    RelationKinds {
        /// Source of the edge.
        src: String,
        /// Destination of the edge.
        dst: String,
        /// Relation of the edge.
        relation: Relation,
        /// Kind the source must have.
        want_src: NodeKind,
        /// Kind the destination must have.
        want_dst: NodeKind,
        /// Kind the source has.
        got_src: NodeKind,
        /// Kind the destination has.
        got_dst: NodeKind,
    },
    /// An edge's ratio is negative or not finite.
    #[error("edge {src} -[{relation}]-> {dst}: ratio must be finite and >= 0, got {ratio}")]
    BadRatio {
        /// Source of the edge.
        src: String,
        /// Destination of the edge.
        dst: String,
        /// Relation of the edge.
        relation: Relation,
        /// The offending ratio.
        ratio: f64,
    },
    /// A series does not have the length its header promises.
    #[error("series `{what}`: expected {expected} points, found {found}")]
    SeriesLength {
        /// Which series (node or edge and metric).
        what: String,
        /// Points expected from the header.
        expected: usize,
        /// Points found.
        found: usize,
    },
    /// A series refers to a node or edge that the graph does not have.
    #[error("series for unknown {what}")]
    SeriesTarget {
        /// Description of the node or edge.
        what: String,
    },
    /// A field holds a value outside its valid range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Name of the field.
        field: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A JSON document could not be parsed.
    #[error("{context}")]
    Json {
        /// What was being read (a file name, for example).
        context: String,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
}

/// Most characters of an input value an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// `s` as an error message quotes it: at most [`QUOTE_CHARS`] characters, then `...` and the
/// full length, so one bad 500 MB field cannot flood the terminal.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

/// An error and its causes, `: `-separated (what the binary prints).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
