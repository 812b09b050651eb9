package cuda

import (
	"errors"
	"fmt"
)

var (
	// ErrNoDevice: there is no usable CUDA device — the driver library is
	// missing or too old, cuInit failed, or the driver reports no device.
	ErrNoDevice = errors.New("no CUDA device")
	// ErrNoLibrary: a CUDA library other than the driver (cuBLAS, NVRTC)
	// could not be loaded.
	ErrNoLibrary = errors.New("CUDA library not found")
	// ErrClosed: the Device was closed.
	ErrClosed = errors.New("cuda: device closed")
)

// Error is a failed CUDA, cuBLAS or NVRTC call.
type Error struct {
	Op   string // the function called, e.g. "cuMemAlloc_v2"
	Code int32  // its status code
	Name string // the code's name, when the library could tell
	Log  string // NVRTC's compile log, when there is one
}

func (e *Error) Error() string {
	name := e.Name
	if name == "" {
		name = fmt.Sprintf("status %d", e.Code)
	} else {
		name = fmt.Sprintf("%s (%d)", name, e.Code)
	}
	if e.Log != "" {
		return fmt.Sprintf("%s: %s:\n%s", e.Op, name, e.Log)
	}
	return e.Op + ": " + name
}

// CUresult codes named when cuGetErrorName is unavailable, and the ones
// Open tells apart.
const (
	cudaSuccess           = 0
	cudaErrorNoDevice     = 100
	cudaErrorInvalidValue = 1
)

var cuResultNames = map[int32]string{
	1:   "CUDA_ERROR_INVALID_VALUE",
	2:   "CUDA_ERROR_OUT_OF_MEMORY",
	3:   "CUDA_ERROR_NOT_INITIALIZED",
	100: "CUDA_ERROR_NO_DEVICE",
	101: "CUDA_ERROR_INVALID_DEVICE",
	209: "CUDA_ERROR_NO_BINARY_FOR_GPU",
	218: "CUDA_ERROR_INVALID_PTX",
	222: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	500: "CUDA_ERROR_NOT_FOUND",
	700: "CUDA_ERROR_ILLEGAL_ADDRESS",
	701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
	999: "CUDA_ERROR_UNKNOWN",
}

var cublasStatusNames = map[int32]string{
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
}
