//! Walking two sorted sequences in step: the full plan visits every key of desired ∪ observed once,
//! in order, without building the union or looking either side up per key.

use std::cmp::Ordering;

/// Yields `(key, left, right)` for every key present on either side, in ascending key order.
/// Both inputs must be sorted by key without duplicates (as `BTreeMap`/`BTreeSet` iterators are).
pub(super) fn merge_join<K: Ord + Copy, A, B>(
    left: impl IntoIterator<Item = (K, A)>,
    right: impl IntoIterator<Item = (K, B)>,
) -> impl Iterator<Item = (K, Option<A>, Option<B>)> {
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    std::iter::from_fn(move || {
        let order = match (l.peek(), r.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        Some(match order {
            Ordering::Less => {
                let (k, a) = l.next()?;
                (k, Some(a), None)
            }
            Ordering::Greater => {
                let (k, b) = r.next()?;
                (k, None, Some(b))
            }
            Ordering::Equal => {
                let (k, a) = l.next()?;
                let (_, b) = r.next()?;
                (k, Some(a), Some(b))
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::merge_join;

    #[test]
    fn visits_the_union_in_order_once() {
        let left = [(1, 'a'), (3, 'b'), (5, 'c')];
        let right = [(2, 'x'), (3, 'y'), (6, 'z')];
        let got: Vec<_> = merge_join(left, right).collect();
        assert_eq!(
            got,
            vec![
                (1, Some('a'), None),
                (2, None, Some('x')),
                (3, Some('b'), Some('y')),
                (5, Some('c'), None),
                (6, None, Some('z')),
            ]
        );
    }

    #[test]
    fn one_side_empty() {
        let none: [(u8, ()); 0] = [];
        assert_eq!(merge_join(none, [(1, ())]).count(), 1);
        assert_eq!(merge_join([(1, ())], none).count(), 1);
        assert_eq!(merge_join(none, none).count(), 0);
    }
}
