//! What a finished span is made of: ids, name, times, attributes, events, status.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::ids::{SpanId, TraceId};

/// The value of a span or event attribute.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer (unsigned values above `i64::MAX` are kept as floats).
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    String(Cow<'static, str>),
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::String(v) => f.write_str(v),
        }
    }
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident($conv:expr)),* $(,)?) => {
        $(impl From<$ty> for AttributeValue {
            fn from(v: $ty) -> Self {
                Self::$variant($conv(v))
            }
        })*
    };
}
value_from! {
    bool => Bool(|v| v),
    i64 => Int(|v| v),
    i32 => Int(i64::from),
    u32 => Int(i64::from),
    f64 => Float(|v| v),
    &'static str => String(Cow::Borrowed),
    String => String(Cow::Owned),
    Cow<'static, str> => String(|v| v),
}

impl From<u64> for AttributeValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Self::Float(v as f64), Self::Int)
    }
}

impl From<usize> for AttributeValue {
    fn from(v: usize) -> Self {
        Self::from(v as u64)
    }
}

/// One attribute: a key and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The attribute's name, such as `gen_ai.request.model`.
    pub key: Cow<'static, str>,
    /// Its value.
    pub value: AttributeValue,
}

impl KeyValue {
    /// An attribute.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<AttributeValue>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Serializes a list of attributes as one JSON object (later keys win).
pub(crate) fn attributes_as_map<S: Serializer>(
    attrs: &[KeyValue],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(attrs.len()))?;
    for kv in attrs {
        map.serialize_entry(kv.key.as_ref(), &kv.value)?;
    }
    map.end()
}

/// A span's outcome, as in OpenTelemetry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpanStatus {
    /// Nothing was said about the outcome.
    #[default]
    Unset,
    /// The operation succeeded (set explicitly).
    Ok,
    /// The operation failed.
    Error {
        /// Why.
        message: String,
    },
}

impl SpanStatus {
    /// An error status with `message`.
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error { .. })
    }
}

/// The role of a span, as in OpenTelemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpanKind {
    /// Work inside the process (the default).
    #[default]
    Internal,
    /// Handling a request from a remote caller.
    Server,
    /// A request to a remote service.
    Client,
    /// Sending a message to be handled later.
    Producer,
    /// Handling a message sent earlier.
    Consumer,
}

impl SpanKind {
    /// Reads the kind from its OpenTelemetry name, in any case (`"server"`, `"CLIENT"`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// Something that happened during a span, at one instant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanEvent {
    /// The event's name (the log message, or `exception` for an error).
    pub name: Cow<'static, str>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Its attributes.
    #[serde(serialize_with = "attributes_as_map")]
    pub attributes: Vec<KeyValue>,
}

/// A span that has ended, as kept in the trace store and sent to exporters.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// Its parent's id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent came from another process (through `traceparent`).
    pub parent_is_remote: bool,
    /// Its name.
    pub name: Cow<'static, str>,
    /// Its role.
    pub kind: SpanKind,
    /// The `tracing` target (usually the module path) it was created in.
    pub target: &'static str,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Its attributes.
    #[serde(serialize_with = "attributes_as_map")]
    pub attributes: Vec<KeyValue>,
    /// Its events, oldest first.
    pub events: Vec<SpanEvent>,
    /// Its outcome.
    pub status: SpanStatus,
    /// The W3C `tracestate` it carried, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
    /// Attributes or events left out because the span already held the maximum.
    pub dropped: u32,
}

impl FinishedSpan {
    /// How long it lasted, in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }

    /// The value of the attribute named `key` (the last one, if set twice).
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    /// Bytes this span occupies on the heap and inline, counting the capacity of its vectors
    /// and owned strings (not allocator overhead).
    pub fn approx_bytes(&self) -> usize {
        #[allow(clippy::ptr_arg)] // whether the string is owned is the point
        fn cow(s: &Cow<'static, str>) -> usize {
            match s {
                Cow::Borrowed(_) => 0,
                Cow::Owned(s) => s.capacity(),
            }
        }
        fn attrs(v: &Vec<KeyValue>) -> usize {
            v.capacity() * std::mem::size_of::<KeyValue>()
                + v.iter()
                    .map(|kv| {
                        cow(&kv.key)
                            + match &kv.value {
                                AttributeValue::String(s) => cow(s),
                                _ => 0,
                            }
                    })
                    .sum::<usize>()
        }
        std::mem::size_of::<Self>()
            + cow(&self.name)
            + attrs(&self.attributes)
            + self.events.capacity() * std::mem::size_of::<SpanEvent>()
            + self
                .events
                .iter()
                .map(|e| cow(&e.name) + attrs(&e.attributes))
                .sum::<usize>()
            + match &self.status {
                SpanStatus::Error { message } => message.capacity(),
                _ => 0,
            }
            + self.trace_state.as_ref().map_or(0, String::capacity)
    }
}
