//! `Duration`s in configs of every primitive: written as humantime strings (`"60s"`, `"1m 30s"`), read from such a
//! string or from a plain number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Seconds(u64),
    Fractional(f64),
}

fn parse<E: serde::de::Error>(repr: Repr) -> Result<Duration, E> {
    match repr {
        Repr::Text(text) => humantime::parse_duration(&text)
            .map_err(|e| E::custom(format_args!("invalid duration {text:?}: {e}"))),
        Repr::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Repr::Fractional(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|e| E::custom(format_args!("invalid duration {secs} s: {e}"))),
    }
}

pub(crate) fn serialize<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*duration))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(Repr::deserialize(d)?)
}

/// The same for `Option<Duration>`; `null` or a missing field is `None`.
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<Repr>::deserialize(d)?.map(parse).transpose()
    }
}

/// Durations in the listing shown by the HTTP API: whole milliseconds, `null` for `None`.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
}
