// Kernels for package cuda's own tests (cuda_test.go), not for gpuquant's model.
// Regenerate the PTX with:
//   nvcc -arch=compute_80 -ptx -o testkernels.ptx testkernels.cu
#include <stdint.h>

// y[i] = a * x[i] + b for i < n.
extern "C" __global__ void gq_test_axpb(float* y, const float* x, float a, float b, int32_t n) {
    int32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + b;
}

// Writes back each argument, widened to 64 bits, so a test sees whether every parameter arrived
// with its own size and offset.
extern "C" __global__ void gq_test_pack(int64_t* out, int32_t i32, uint32_t u32, int64_t i64, float f32,
                                        uint64_t u64, int32_t tail) {
    out[0] = i32;
    out[1] = u32;
    out[2] = i64;
    out[3] = __float_as_uint(f32);
    out[4] = (int64_t)u64;
    out[5] = tail;
}

// Stops the kernel with a trap: a launch failure that surfaces at the next synchronization.
extern "C" __global__ void gq_test_trap() { __trap(); }
