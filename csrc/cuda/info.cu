// Diagnostics of modelgit._cuda: the CUDA runtime it was built with, and the devices.
#include "cuda/common.cuh"

namespace modelgit::cuda {

int runtime_version_built() { return CUDART_VERSION; }

Status device_count(int* count) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *count = 0;
    return cuda_status(e, "cudaGetDeviceCount");
  }
  return {};
}

}  // namespace modelgit::cuda
