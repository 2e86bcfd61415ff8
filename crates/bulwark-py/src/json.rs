//! Python values to JSON bytes and back, for checkpoint states.
//!
//! A state is what `json.dumps` takes without options and gives back equal: `dict` with `str`
//! keys, `list` (and `tuple`, which comes back as a list), `str`, `int` within 64 bits, finite
//! `float`, `bool` and `None`. Anything else is refused with a `TypeError` or `ValueError`
//! naming the path of the offending value (`state["steps"][3]`), before anything is written.
//! Nesting is capped ([`MAX_DEPTH`]) so a list that contains itself is an error, not a stack
//! overflow.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{DeserializeSeed, Deserializer, Error as DeError, MapAccess, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;

/// The deepest nesting a state may have: below serde_json's reading limit (128), so every
/// state that saves also loads.
pub(crate) const MAX_DEPTH: usize = 100;

/// Serializes `value` to JSON bytes, or says why it is not a JSON state.
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let walk = Walk {
        value,
        depth: 0,
        path: &Path::Root,
    };
    match serde_json::to_writer(&mut out, &walk) {
        Ok(()) => Ok(out),
        Err(e) => {
            let message = e.to_string();
            Err(match message.strip_prefix("type:") {
                Some(rest) => {
                    PyTypeError::new_err(format!("state is not JSON-serializable: {rest}"))
                }
                None => PyValueError::new_err(format!("state is not JSON-serializable: {message}")),
            })
        }
    }
}

/// Builds Python objects straight from JSON text (as `json.loads` does: object keys keep their
/// order, no intermediate tree). Used for results, where the text is what `to_json` wrote.
pub(crate) fn from_str(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = PySeed(py)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| PyValueError::new_err(format!("stored state does not parse: {e}")))?;
    Ok(value.unbind())
}

/// Builds Python objects from a parsed JSON value (metadata and reports).
pub(crate) fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    from_str(py, &value.to_string())
}

struct PySeed<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: DeError>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }

    fn visit_bool<E: DeError>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }

    fn visit_i64<E: DeError>(self, v: i64) -> Result<Self::Value, E> {
        v.into_pyobject(self.0)
            .map(Bound::into_any)
            .map_err(E::custom)
    }

    fn visit_u64<E: DeError>(self, v: u64) -> Result<Self::Value, E> {
        v.into_pyobject(self.0)
            .map(Bound::into_any)
            .map_err(E::custom)
    }

    fn visit_f64<E: DeError>(self, v: f64) -> Result<Self::Value, E> {
        v.into_pyobject(self.0)
            .map(Bound::into_any)
            .map_err(E::custom)
    }

    fn visit_str<E: DeError>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(PySeed(self.0))? {
            items.push(item);
        }
        PyList::new(self.0, items)
            .map(Bound::into_any)
            .map_err(A::Error::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let value = map.next_value_seed(PySeed(self.0))?;
            dict.set_item(key.as_ref(), value)
                .map_err(A::Error::custom)?;
        }
        Ok(dict.into_any())
    }
}

enum Path<'a> {
    Root,
    Key(&'a Path<'a>, String),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root => f.write_str("state"),
            Self::Key(parent, key) => write!(f, "{parent}[{key:?}]"),
            Self::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Walk<'a, 'py> {
    value: &'a Bound<'py, PyAny>,
    depth: usize,
    path: &'a Path<'a>,
}

impl<'py> Walk<'_, 'py> {
    fn sequence<S: Serializer>(
        &self,
        s: S,
        len: usize,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(len))?;
        for (i, item) in items.enumerate() {
            let path = Path::Index(self.path, i);
            seq.serialize_element(&Walk {
                value: &item,
                depth: self.depth + 1,
                path: &path,
            })?;
        }
        seq.end()
    }
}

impl Serialize for Walk<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        if v.is_none() {
            return s.serialize_unit();
        }
        if let Ok(text) = v.cast::<PyString>() {
            let text = text
                .to_cow()
                .map_err(|e| S::Error::custom(format!("{}: {e}", self.path)))?;
            return s.serialize_str(&text);
        }
        if let Ok(b) = v.cast::<PyBool>() {
            return s.serialize_bool(b.is_true());
        }
        if v.cast::<PyInt>().is_ok() {
            if let Ok(i) = v.extract::<i64>() {
                return s.serialize_i64(i);
            }
            if let Ok(u) = v.extract::<u64>() {
                return s.serialize_u64(u);
            }
            return Err(S::Error::custom(format!(
                "{}: the integer does not fit in 64 bits",
                self.path
            )));
        }
        if let Ok(f) = v.cast::<PyFloat>() {
            let f = f.value();
            if !f.is_finite() {
                return Err(S::Error::custom(format!(
                    "{}: {f} is not a JSON number",
                    self.path
                )));
            }
            return s.serialize_f64(f);
        }
        if self.depth >= MAX_DEPTH {
            return Err(S::Error::custom(format!(
                "{}: nested deeper than {MAX_DEPTH} levels (does it contain itself?)",
                self.path
            )));
        }
        if let Ok(dict) = v.cast::<PyDict>() {
            let mut map = s.serialize_map(Some(dict.len()))?;
            for (key, item) in dict.iter() {
                let Ok(key) = key.cast::<PyString>() else {
                    let type_name = type_name(&key);
                    return Err(S::Error::custom(format!(
                        "type:{}: a key of type {type_name} (only str keys round-trip)",
                        self.path
                    )));
                };
                let key = key
                    .to_cow()
                    .map_err(|e| S::Error::custom(format!("{}: {e}", self.path)))?;
                let path = Path::Key(self.path, key.to_string());
                map.serialize_entry(
                    &*key,
                    &Walk {
                        value: &item,
                        depth: self.depth + 1,
                        path: &path,
                    },
                )?;
            }
            return map.end();
        }
        if let Ok(list) = v.cast::<PyList>() {
            return self.sequence(s, list.len(), list.iter());
        }
        if let Ok(tuple) = v.cast::<PyTuple>() {
            return self.sequence(s, tuple.len(), tuple.iter());
        }
        Err(S::Error::custom(format!(
            "type:{}: a value of type {}",
            self.path,
            type_name(v)
        )))
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}
