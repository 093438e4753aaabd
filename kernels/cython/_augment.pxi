# One image of the artificial expansion (kernels/reference/augment.py), written once: augment.pyx's public
# kernel calls it per image, fused.pyx on its share of a batch's rows.

from libc.math cimport cos, floor, sin


cdef void augment_image(const floating* img, Py_ssize_t side, double dx, double dy, double angle,
                        floating* out) noexcept nogil:
    """out (side * side,) = the image img (side * side,) rotated by ``angle`` radians about its centre, then
    shifted by dx columns and dy rows: the inverse map to the source, then bilinear interpolation with zeros
    outside the image, in double in the reference's order."""
    cdef Py_ssize_t r, c, r0, c0
    cdef double centre = (side - 1) / 2.0, ca = cos(angle), sa = sin(angle)
    cdef double u, v, src_r, src_c, fr0, fc0, fr, fc, acc
    for r in range(side):
        v = r - dy - centre
        for c in range(side):
            u = c - dx - centre
            src_c = ca * u - sa * v + centre
            src_r = sa * u + ca * v + centre
            fr0 = floor(src_r)
            fc0 = floor(src_c)
            fr = src_r - fr0
            fc = src_c - fc0
            r0 = <Py_ssize_t>fr0
            c0 = <Py_ssize_t>fc0
            acc = 0.0
            # The four neighbours in the reference's order; outside ones contribute nothing.
            if 0 <= r0 < side:
                if 0 <= c0 < side:
                    acc += (1 - fr) * (1 - fc) * <double>img[r0 * side + c0]
                if 0 <= c0 + 1 < side:
                    acc += (1 - fr) * fc * <double>img[r0 * side + c0 + 1]
            if 0 <= r0 + 1 < side:
                if 0 <= c0 < side:
                    acc += fr * (1 - fc) * <double>img[(r0 + 1) * side + c0]
                if 0 <= c0 + 1 < side:
                    acc += fr * fc * <double>img[(r0 + 1) * side + c0 + 1]
            out[r * side + c] = <floating>acc
