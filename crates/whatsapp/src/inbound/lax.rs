//! Lenient field types for reading platform JSON straight into typed structs.
//!
//! Kapso and Meta payloads are loosely specified: ids arrive as strings or numbers, optional
//! objects arrive as `null`, fields grow new shapes. These types read a value of an unexpected
//! type as absent instead of failing the whole delivery, exactly as looking the field up in a
//! parsed JSON tree would; but they do it while the body is parsed once, borrowing strings from
//! the body where it has no escapes.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::marker::PhantomData;

/// Text: a non-empty string, or a number written as text; anything else is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Option<Cow<'a, str>>);

/// Any string, also an empty one; anything else is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub Option<Cow<'a, str>>);

/// A boolean; anything else is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flag(pub Option<bool>);

/// Any number, as `f64`; anything else is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Float(pub Option<f64>);

/// A non-negative integer; anything else (a fraction too) is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count(pub Option<u64>);

/// An object read into `T`; any other value reads as `T::default()`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Lax<T>(pub T);

/// An object read into `T`; any other value is absent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Obj<T>(pub Option<T>);

/// An array of `T`s; any other value is absent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct List<T>(pub Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> List<T> {
    /// The items (none when the value was not an array).
    pub fn items(&self) -> &[T] {
        self.0.as_deref().unwrap_or_default()
    }
}

/// An array of `T`s or a single object `T` (Kapso's `data`); anything else is `Neither`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum OneOrMany<T> {
    /// An array.
    Many(Vec<T>),
    /// An object (boxed: the array is the common case).
    One(Box<T>),
    /// Any other value.
    #[default]
    Neither,
}

/// Any value as the JSON text a parsed tree would print for it; strings are kept apart so a
/// caller can take them unquoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Json<'a> {
    /// A string value (unquoted).
    String(Cow<'a, str>),
    /// Any other value, as JSON text.
    Other(String),
}

impl Json<'_> {
    /// The JSON text (strings quoted and escaped).
    pub fn json(&self) -> String {
        match self {
            Self::String(s) => serde_json::Value::String(s.clone().into_owned()).to_string(),
            Self::Other(text) => text.clone(),
        }
    }

    /// Strings as they are, anything else as JSON text.
    pub fn text(&self) -> String {
        match self {
            Self::String(s) => s.clone().into_owned(),
            Self::Other(text) => text.clone(),
        }
    }
}

impl Default for Json<'_> {
    fn default() -> Self {
        Self::Other("null".to_owned())
    }
}

/// For `#[serde(deserialize_with = "present")]`: `Some` whenever the key is there, even with
/// `null` (plain `Option` reads `null` as `None`).
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// How a lenient type takes each kind of JSON value; everything it does not take is drained
/// and read as the default.
trait Lenient<'de>: Sized + Default {
    fn string(_: &str) -> Self {
        Self::default()
    }
    fn borrowed(s: &'de str) -> Self {
        Self::string(s)
    }
    fn owned(s: String) -> Self {
        Self::string(&s)
    }
    fn unsigned(_: u64) -> Self {
        Self::default()
    }
    fn signed(_: i64) -> Self {
        Self::default()
    }
    fn float(_: f64) -> Self {
        Self::default()
    }
    fn boolean(_: bool) -> Self {
        Self::default()
    }
    fn null() -> Self {
        Self::default()
    }
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Self::default())
    }
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Self::default())
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::string(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::borrowed(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok(T::owned(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::map(map)
    }
}

fn lenient<'de, D: Deserializer<'de>, T: Lenient<'de>>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_any(LenientVisitor(PhantomData))
}

fn number_text(n: impl Into<serde_json::Number>) -> String {
    n.into().to_string()
}

impl<'de: 'a, 'a> Lenient<'de> for Text<'a> {
    fn string(s: &str) -> Self {
        Self((!s.is_empty()).then(|| Cow::Owned(s.to_owned())))
    }
    fn borrowed(s: &'de str) -> Self {
        Self((!s.is_empty()).then_some(Cow::Borrowed(s)))
    }
    fn owned(s: String) -> Self {
        Self((!s.is_empty()).then_some(Cow::Owned(s)))
    }
    fn unsigned(n: u64) -> Self {
        Self(Some(Cow::Owned(number_text(n))))
    }
    fn signed(n: i64) -> Self {
        Self(Some(Cow::Owned(number_text(n))))
    }
    fn float(n: f64) -> Self {
        Self(serde_json::Number::from_f64(n).map(|n| Cow::Owned(n.to_string())))
    }
}

impl<'de: 'a, 'a> Lenient<'de> for Str<'a> {
    fn string(s: &str) -> Self {
        Self(Some(Cow::Owned(s.to_owned())))
    }
    fn borrowed(s: &'de str) -> Self {
        Self(Some(Cow::Borrowed(s)))
    }
    fn owned(s: String) -> Self {
        Self(Some(Cow::Owned(s)))
    }
}

impl Lenient<'_> for Flag {
    fn boolean(b: bool) -> Self {
        Self(Some(b))
    }
}

impl Lenient<'_> for Float {
    #[allow(clippy::cast_precision_loss)] // what `Value::as_f64` does
    fn unsigned(n: u64) -> Self {
        Self(Some(n as f64))
    }
    #[allow(clippy::cast_precision_loss)]
    fn signed(n: i64) -> Self {
        Self(Some(n as f64))
    }
    fn float(n: f64) -> Self {
        Self(Some(n))
    }
}

impl Lenient<'_> for Count {
    fn unsigned(n: u64) -> Self {
        Self(Some(n))
    }
    fn signed(n: i64) -> Self {
        Self(u64::try_from(n).ok())
    }
}

impl<'de, T: Deserialize<'de> + Default> Lenient<'de> for Lax<T> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Self)
    }
}

impl<'de, T: Deserialize<'de>> Lenient<'de> for Obj<T> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Self(Some(t)))
    }
}

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Lenient<'de> for List<T> {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Self(Some(items)))
    }
}

impl<'de, T: Deserialize<'de>> Lenient<'de> for OneOrMany<T> {
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| Self::One(Box::new(one)))
    }
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        List::<T>::seq(seq).map(|list| Self::Many(list.0.unwrap_or_default()))
    }
}

impl<'de: 'a, 'a> Lenient<'de> for Json<'a> {
    fn string(s: &str) -> Self {
        Self::String(Cow::Owned(s.to_owned()))
    }
    fn borrowed(s: &'de str) -> Self {
        Self::String(Cow::Borrowed(s))
    }
    fn owned(s: String) -> Self {
        Self::String(Cow::Owned(s))
    }
    fn unsigned(n: u64) -> Self {
        Self::Other(number_text(n))
    }
    fn signed(n: i64) -> Self {
        Self::Other(number_text(n))
    }
    fn float(n: f64) -> Self {
        Self::Other(serde_json::Number::from_f64(n).map_or_else(|| "null".to_owned(), |n| n.to_string()))
    }
    fn boolean(b: bool) -> Self {
        Self::Other(b.to_string())
    }
    fn map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        // Objects and arrays only reach here in payloads no platform sends (an error code that
        // is an object); printed as a tree would print them.
        let tree = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Self::Other(tree.to_string()))
    }
    fn seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        let tree = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Self::Other(tree.to_string()))
    }
}

macro_rules! deserialize_leniently {
    ($($ty:ty => [$($generics:tt)*]),* $(,)?) => {$(
        impl<$($generics)*> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                lenient(deserializer)
            }
        }
    )*};
}

deserialize_leniently! {
    Text<'a> => ['de: 'a, 'a],
    Str<'a> => ['de: 'a, 'a],
    Json<'a> => ['de: 'a, 'a],
    Flag => ['de],
    Float => ['de],
    Count => ['de],
    Lax<T> => ['de, T: Deserialize<'de> + Default],
    Obj<T> => ['de, T: Deserialize<'de>],
    List<T> => ['de, T: Deserialize<'de>],
    OneOrMany<T> => ['de, T: Deserialize<'de>],
}

impl<'a> Text<'a> {
    /// The text, if there is any.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text as an owned string.
    pub fn cloned(&self) -> Option<String> {
        self.0.as_deref().map(str::to_owned)
    }
}

impl Str<'_> {
    /// The string, if the value was one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Probe<'a> {
        #[serde(borrow)]
        text: Text<'a>,
        #[serde(borrow)]
        str: Str<'a>,
        flag: Flag,
        float: Float,
        count: Count,
        inner: Lax<Inner>,
        obj: Obj<Inner>,
        list: List<Lax<Inner>>,
        #[serde(borrow, deserialize_with = "present")]
        json: Option<Json<'a>>,
        #[serde(deserialize_with = "present")]
        seen: Option<IgnoredAny>,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Inner {
        n: Count,
    }

    fn probe(json: &str) -> Probe<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn values_of_the_wrong_type_read_as_absent() {
        let p = probe(
            r#"{"text":{"a":[1,2]},"str":5,"flag":"yes","float":"1","count":-1,"inner":[1],"obj":"x","list":{"n":1},"json":null}"#,
        );
        assert_eq!(p.text.get(), None);
        assert_eq!(p.str.get(), None);
        assert_eq!((p.flag.0, p.float.0, p.count.0), (None, None, None));
        assert_eq!(p.inner.0, Inner::default());
        assert!(p.obj.0.is_none());
        assert!(p.list.0.is_none());
        assert_eq!(p.json.map(|j| j.json()), Some("null".to_owned()));
        assert!(p.seen.is_none());
    }

    #[test]
    fn values_of_the_right_type_are_read_and_strings_borrowed_when_unescaped() {
        let p = probe(
            r#"{"text":"abc","str":"","flag":true,"float":2,"count":7,"inner":{"n":3},"obj":{},"list":[{"n":1},2],"json":"q\"","seen":null}"#,
        );
        assert!(matches!(p.text.0, Some(Cow::Borrowed("abc"))));
        assert_eq!(p.str.get(), Some(""));
        assert_eq!((p.flag.0, p.float.0, p.count.0), (Some(true), Some(2.0), Some(7)));
        assert_eq!(p.inner.0.n.0, Some(3));
        assert_eq!(p.obj.0, Some(Inner::default()));
        assert_eq!(p.list.items().len(), 2);
        assert_eq!(p.list.items()[1].0, Inner::default());
        let json = p.json.unwrap();
        assert_eq!((json.json().as_str(), json.text().as_str()), (r#""q\"""#, "q\""));
        assert!(p.seen.is_some(), "a key with null is present");
        assert_eq!(probe(r#"{"text":""}"#).text.get(), None, "empty text is absent");
        assert_eq!(probe(r#"{"text":"a\nb"}"#).text.get(), Some("a\nb"));
    }

    #[test]
    fn numbers_read_as_text_print_as_a_tree_prints_them() {
        for (json, text) in [("12", "12"), ("-3", "-3"), ("1.5", "1.5"), ("1e3", "1000.0")] {
            let body = format!(r#"{{"text":{json},"json":{json}}}"#);
            let p = probe(&body);
            let tree: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(p.text.get(), Some(text));
            assert_eq!(p.text.get(), Some(tree.to_string().as_str()));
            assert_eq!(p.json.unwrap().json(), tree.to_string());
        }
        let p = probe(r#"{"json":{"b":[true,null],"a":1}}"#);
        assert_eq!(p.json.unwrap().json(), r#"{"a":1,"b":[true,null]}"#);
    }

    #[test]
    fn a_parsed_tree_reads_the_same_as_the_text() {
        let tree = serde_json::json!({"text": 5, "str": "s", "inner": {"n": 2}, "list": [{"n": 4}]});
        let p = Probe::deserialize(&tree).unwrap();
        assert_eq!(p.text.get(), Some("5"));
        assert_eq!(p.str.get(), Some("s"));
        assert_eq!(p.inner.0.n.0, Some(2));
        assert_eq!(p.list.items()[0].0.n.0, Some(4));
    }
}
