//! The buffer and shape helpers against what their documentation promises,
//! checked element by element: the shape a buffer ends with, whether the
//! call says it changed, zeros after a change, the contents kept otherwise,
//! and which shapes count as empty.

use ndarray::{Array2, Array4, ArrayD};
use proptest::prelude::*;
use tensor4d::{ShapeError, Window, check_nonempty, grow, reuse, reuse2, reuse4};

proptest! {
    // Empty means some axis is 0: checked by looking at each axis in turn.
    #[test]
    fn check_nonempty_refuses_exactly_the_shapes_with_a_zero_axis(
        shape in proptest::collection::vec(0usize..3, 0..5)
    ) {
        let mut empty = false;
        for &d in &shape {
            if d == 0 {
                empty = true;
            }
        }
        match check_nonempty(&shape) {
            Ok(()) => prop_assert!(!empty, "{:?} accepted", shape),
            Err(e) => {
                prop_assert!(empty, "{:?} refused", shape);
                prop_assert_eq!(e, ShapeError::Empty { shape: shape.clone() });
            }
        }
    }

    // Each reuse variant: the buffer takes the new shape, the result says
    // whether the shape changed, a changed buffer is all zeros, and an
    // unchanged one keeps what the caller had written.
    #[test]
    fn reuse_gives_the_shape_and_says_whether_it_changed(
        from in (1usize..4, 1usize..4, 1usize..4, 1usize..4),
        to in (1usize..4, 1usize..4, 1usize..4, 1usize..4),
    ) {
        let changed = from != to;

        let mut b4 = Array4::from_elem(from, 7.0f32);
        prop_assert_eq!(reuse4(&mut b4, to), changed);
        prop_assert_eq!(b4.dim(), to);
        let want = if changed { 0.0 } else { 7.0 };
        prop_assert!(b4.iter().all(|&v| v == want), "reuse4 contents");

        let (f2, t2) = ((from.0, from.1 * from.2), (to.0, to.1 * to.2));
        let mut b2 = Array2::from_elem(f2, 7.0f64);
        prop_assert_eq!(reuse2(&mut b2, t2), f2 != t2);
        prop_assert_eq!(b2.dim(), t2);
        let want = if f2 != t2 { 0.0 } else { 7.0 };
        prop_assert!(b2.iter().all(|&v| v == want), "reuse2 contents");

        let (fd, td) = ([from.0, from.1, from.2], [to.0, to.1 * to.2 * to.3]);
        let mut bd = ArrayD::from_elem(fd.to_vec(), 7.0f32);
        prop_assert!(reuse(&mut bd, &td), "a rank change is a change");
        prop_assert_eq!(bd.shape(), &td[..]);
        prop_assert!(bd.iter().all(|&v| v == 0.0), "reuse contents");
        bd.fill(3.0);
        prop_assert!(!reuse(&mut bd, &td));
        prop_assert!(bd.iter().all(|&v| v == 3.0), "reuse kept contents");
    }

    // grow: the slice has the length asked for, the vector never shrinks,
    // and elements already there are kept.
    #[test]
    fn grow_never_shrinks_and_keeps_elements(lens in proptest::collection::vec(0usize..10, 1..6)) {
        let mut v: Vec<u32> = Vec::new();
        let mut longest = 0;
        for (round, &len) in lens.iter().enumerate() {
            let s = grow(&mut v, len);
            prop_assert_eq!(s.len(), len);
            for x in s.iter_mut() {
                *x += 1;
            }
            longest = longest.max(len);
            prop_assert_eq!(v.len(), longest);
            // Element i has been incremented once per round whose length exceeded i.
            for (i, &x) in v.iter().enumerate() {
                let want = lens[..=round].iter().filter(|&&l| l > i).count() as u32;
                prop_assert_eq!(x, want, "element {}", i);
            }
        }
    }

    // A window's area is the number of pixels it covers: counted one by one.
    #[test]
    fn area_counts_the_pixels_of_a_window(fh in 1usize..9, fw in 1usize..9, s in 1usize..4, p in 0usize..3) {
        let win = Window::new(fh, fw).with_stride(s).with_pad(p);
        let mut pixels = 0;
        for _ in 0..fh {
            for _ in 0..fw {
                pixels += 1;
            }
        }
        prop_assert_eq!(win.area(), pixels);
    }
}

/// An area too large to count saturates instead of wrapping to a small one.
#[test]
fn an_area_too_large_to_count_saturates() {
    assert_eq!(Window::new(usize::MAX, 2).area(), usize::MAX);
    assert_eq!(Window::new(usize::MAX / 2 + 1, 2).area(), usize::MAX);
    assert_eq!(Window::new(usize::MAX, 1).area(), usize::MAX);
}
