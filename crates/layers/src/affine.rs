use kernels::{FEW_ROWS_COLS, GemmScratch, MatMut, MatRef, Rows, TILE_ROWS, gemm_few_rows};
use ndarray::{Array1, Array2, ArrayD, ArrayViewD, Axis};
use rand::Rng;
use tensor4d::{Float, ShapeError, reuse, reuse2};

use crate::par::par_gemm;

use crate::{Error, Init, Layer, LayerHooks, Mode, check_dout, check_weight_bias, shape_error};

/// Fully connected layer, `y = x W + b` (section 5.6 of the book, used by
/// chapter 7's networks after the convolutions).
///
/// `W` has shape `(in, out)` as in the book. An input of any rank >= 2 is
/// flattened row-major to `(N, in)` (for NCHW, over C, H, W), and the input
/// gradient is given back in the input's original shape.
///
/// ```
/// use layers::{Affine, Layer, Mode};
/// use ndarray::{arr1, arr2, ArrayD};
/// let mut fc = Affine::from_weights(arr2(&[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]), arr1(&[0.5, 0.0]))?;
/// // A 1x1x2x2 image flattens to 4 inputs.
/// let x = ArrayD::from_shape_vec(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(fc.forward(x.view(), Mode::Inference)?.as_slice().unwrap(), &[4.5, 7.0]);
/// # Ok::<(), layers::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Affine<T> {
    weight: Array2<T>,
    bias: Array1<T>,
    dw: Array2<T>,
    db: Array1<T>,
    /// The last input, flattened to `(N, in)`: backward needs it for dW.
    x: Array2<T>,
    /// The last input's original shape, to give dx back in it.
    x_shape: Vec<usize>,
    out: ArrayD<T>,
    dx: ArrayD<T>,
    /// GEMM packing space, one per parallel part, kept between steps.
    scratch: Vec<GemmScratch>,
    /// Where each row of the weights starts, for reading them in place.
    row_starts: Vec<usize>,
}

impl<T: Float> Affine<T> {
    /// An affine layer from `inputs` to `outputs`, weights (and biases, for
    /// [`Init::PyTorch`]) drawn by `init` with fan-in `inputs`.
    ///
    /// ```
    /// use layers::{Affine, Init, Layer, Mode};
    /// use ndarray::ArrayD;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// // SimpleConvNet's hidden layer: the 30x12x12 pooled maps to 100 units.
    /// let mut fc = Affine::<f32>::new(30 * 12 * 12, 100, Init::Normal { std: 0.01 }, &mut rng)?;
    /// let x = ArrayD::<f32>::zeros(vec![8, 30, 12, 12]); // flattened as the book's reshape does
    /// assert_eq!(fc.forward(x.view(), Mode::Train)?.shape(), &[8, 100]);
    /// assert!(fc.bias().iter().all(|&b| b == 0.0));
    /// # Ok::<(), layers::Error>(())
    /// ```
    pub fn new<R: Rng + ?Sized>(
        inputs: usize,
        outputs: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let w = init
            .sample::<T, R>(&[inputs, outputs], inputs, rng)
            .map_err(|m| Error::invalid("Affine", m))?
            .into_dimensionality()
            .unwrap_or_else(|_| unreachable!("sampled with a 2-D shape"));
        Self::from_weights(w, init.sample_bias(outputs, inputs, rng))
    }

    /// An affine layer with weights `(in, out)` and biases `(out,)`:
    /// forward is `x W + b`, backward `dx = dout W^T`, `dW = x^T dout`,
    /// `db` the column sums of `dout` (section 5.6.2).
    ///
    /// ```
    /// use layers::{Affine, Layer, Mode};
    /// use ndarray::{ArrayD, IxDyn, array};
    ///
    /// let mut fc = Affine::from_weights(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], array![0.5, -0.5])?;
    /// let x = ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![1.0, 0.0, -1.0])?;
    /// let y = fc.forward(x.view(), Mode::Train)?;
    /// assert_eq!(y.as_slice().unwrap(), &[1.0 - 5.0 + 0.5, 2.0 - 6.0 - 0.5]);
    /// let dout = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![1.0, 10.0])?;
    /// let dx = fc.backward(dout.view())?;
    /// assert_eq!(dx.as_slice().unwrap(), &[21.0, 43.0, 65.0]);
    /// assert_eq!(fc.dw(), &array![[1.0, 10.0], [0.0, 0.0], [-1.0, -10.0]]);
    /// assert_eq!(fc.db(), &array![1.0, 10.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_weights(weight: Array2<T>, bias: Array1<T>) -> Result<Self, Error> {
        let (i, o) = weight.dim();
        let layer = || format!("Affine {i} -> {o}");
        check_weight_bias(&layer, weight.shape(), o, bias.len())?;
        let weight = weight.as_standard_layout().into_owned();
        Ok(Affine {
            dw: Array2::zeros((i, o)),
            db: Array1::zeros(o),
            weight,
            bias,
            x: Array2::zeros((0, 0)),
            x_shape: Vec::new(),
            out: ArrayD::zeros(vec![0]),
            dx: ArrayD::zeros(vec![0]),
            scratch: Vec::new(),
            row_starts: (0..i).map(|r| r * o).collect(),
        })
    }

    /// The weights, `(in, out)`.
    pub fn weight(&self) -> &Array2<T> {
        &self.weight
    }

    /// The biases, `(out,)`.
    pub fn bias(&self) -> &Array1<T> {
        &self.bias
    }

    /// The gradient of the loss with respect to the weights, `(in, out)`,
    /// as the last backward left it: the book's `dW`.
    #[doc(alias = "dW")]
    pub fn dw(&self) -> &Array2<T> {
        &self.dw
    }

    /// The gradient with respect to the biases, `(out,)`: the book's `db`.
    pub fn db(&self) -> &Array1<T> {
        &self.db
    }

    /// [`Layer::output_shape`] without allocating, for every forward.
    fn out_dims(&self, input: &[usize]) -> Result<[usize; 2], Error> {
        let err = |e| shape_error(self, e);
        if input.len() < 2 {
            return Err(err(ShapeError::Rank {
                expected: "at least 2 (N, features...)",
                found: input.to_vec(),
            }));
        }
        tensor4d::check_nonempty(input).map_err(err)?;
        let (inputs, outputs) = self.weight.dim();
        let features = input[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if features != Some(inputs) {
            return Err(err(ShapeError::mismatch(
                format!("features per sample (the product of {:?})", &input[1..]),
                inputs,
                features.map_or("more than usize holds".into(), |f| f.to_string()),
            )));
        }
        Ok([input[0], outputs])
    }
}

crate::weight_and_bias_params!(Affine);

impl<T: Float> Layer<T> for Affine<T> {
    fn describe(&self) -> String {
        let (i, o) = self.weight.dim();
        format!("Affine {i} -> {o}")
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, Error> {
        self.out_dims(input).map(|d| d.to_vec())
    }

    fn forward(&mut self, x: ArrayViewD<'_, T>, _mode: Mode) -> Result<&ArrayD<T>, Error> {
        let out_shape = self.out_dims(x.shape())?;
        let (n, (inputs, outputs)) = (out_shape[0], self.weight.dim());
        self.x_shape.clear();
        self.x_shape.extend_from_slice(x.shape());
        reuse2(&mut self.x, (n, inputs));
        // Row-major flattening over (C, H, W), whatever the view's strides.
        self.x
            .as_slice_mut()
            .unwrap_or_else(|| unreachable!("owned buffers are contiguous"))
            .copy_from_slice(&tensor4d::contiguous(&x));
        reuse(&mut self.out, &out_shape);
        for mut row in self.out.axis_iter_mut(Axis(0)) {
            row.assign(&self.bias);
        }
        let weight = self
            .weight
            .as_slice()
            .unwrap_or_else(|| unreachable!("kept contiguous"));
        let x = self.x.as_slice().unwrap_or_else(|| unreachable!());
        let out = self.out.as_slice_mut().unwrap_or_else(|| unreachable!());
        let x = MatRef::row_major(x, n, inputs);
        // A few images (inference, batch 1): W's rows are read in place,
        // on one thread, since packing all of W for so few rows costs as
        // much as the product. Each sum still runs over k in one order, so
        // the bits do not depend on the threads.
        if n <= TILE_ROWS && outputs >= FEW_ROWS_COLS {
            let w = Rows::new(weight, &self.row_starts, outputs);
            gemm_few_rows(x, w, MatMut::row_major(out, n, outputs));
        } else {
            par_gemm(
                &mut self.scratch,
                T::one(),
                x,
                MatRef::row_major(weight, inputs, outputs),
                T::one(),
                out,
            );
        }
        Ok(&self.out)
    }

    fn backward(&mut self, dout: ArrayViewD<'_, T>) -> Result<&ArrayD<T>, Error> {
        self.backward_pass(dout, true)?;
        Ok(&self.dx)
    }
}

impl<T: Float> LayerHooks<T> for Affine<T> {
    fn operator(&self) -> Option<crate::Operator> {
        Some(crate::Operator::Affine)
    }

    /// A multiply-add per weight and image, one addition per output for the bias.
    fn forward_flops(&self, input: &[usize]) -> Option<u64> {
        let images = *self.output_shape(input).ok()?.first()? as u64;
        let (inputs, outputs) = self.weight.dim();
        images.checked_mul(2 * (inputs as u64).checked_mul(outputs as u64)? + outputs as u64)
    }

    fn backward_params(&mut self, dout: ArrayViewD<'_, T>) -> Result<(), Error> {
        self.backward_pass(dout, false)
    }
}

impl<T: Float> Affine<T> {
    /// dW = x^T dout, db = the column sums of dout, and, if `input_grad`,
    /// dx = dout W^T in the input's shape.
    fn backward_pass(&mut self, dout: ArrayViewD<'_, T>, input_grad: bool) -> Result<(), Error> {
        check_dout(
            &|| self.describe(),
            !self.x_shape.is_empty(),
            self.out.shape(),
            dout.shape(),
        )?;
        let (n, (inputs, outputs)) = (self.x.nrows(), self.weight.dim());
        let dout = tensor4d::contiguous(&dout);
        let dout_m = MatRef::row_major(&dout, n, outputs);
        let x = MatRef::row_major(self.x.as_slice().unwrap_or_else(|| unreachable!()), n, inputs);
        par_gemm(
            &mut self.scratch,
            T::one(),
            x.t(),
            dout_m,
            T::zero(),
            self.dw.as_slice_mut().unwrap_or_else(|| unreachable!()),
        );
        self.db.fill(T::zero());
        for row in dout.chunks_exact(outputs) {
            for (db, &d) in self.db.iter_mut().zip(row) {
                *db += d;
            }
        }
        if !input_grad {
            return Ok(());
        }
        reuse(&mut self.dx, &self.x_shape);
        let weight = MatRef::row_major(
            self.weight.as_slice().unwrap_or_else(|| unreachable!()),
            inputs,
            outputs,
        );
        par_gemm(
            &mut self.scratch,
            T::one(),
            dout_m,
            weight.t(),
            T::zero(),
            self.dx.as_slice_mut().unwrap_or_else(|| unreachable!()),
        );
        Ok(())
    }
}
