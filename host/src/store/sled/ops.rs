//! The operations of one write to a case, in the order they are made.

/// The operations of one write, in order.
#[derive(Default)]
pub(crate) struct Ops(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: Vec<u8>, value: impl Into<Vec<u8>>) {
        self.0.push((key, Some(value.into())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.0.push((key, None));
    }

    /// The operations, in order: a value to insert, or `None` to remove the key.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }
}
