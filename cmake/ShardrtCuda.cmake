# SPDX-License-Identifier: Apache-2.0
# SHARDRT_CUDA=AUTO|ON|OFF -> SHARDRT_HAVE_CUDA, CUDA language, CUDA::cudart,
# CUDA::cublas and NCCL::nccl.
include(CheckLanguage)
set(SHARDRT_HAVE_CUDA OFF)
string(TOUPPER "${SHARDRT_CUDA}" _shardrt_cuda)
if(NOT _shardrt_cuda STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    find_package(NCCL)
    if(NCCL_FOUND)
      set(SHARDRT_HAVE_CUDA ON)
      # RUNPATH for the toolkit's and NCCL's library folders. CMake treats the
      # toolkit's lib64 as an implicit link directory and leaves it out, so a
      # binary finds libcudart/libcublas only where ld.so.conf names the
      # toolkit; in a clean root (or the pip wheel layout) every CUDA test
      # would fail to load (exit 127) instead of running or skipping.
      # A library given by a link (run_gpu.sh links a pip wheel's versioned
      # libcublas.so.13 as libcublas.so) is found at run time by its SONAME
      # in the folder the link points into.
      set(_shardrt_rt_dirs ${CUDAToolkit_LIBRARY_DIR} ${NCCL_LIBRARY_DIR})
      foreach(_l ${CUDA_cublas_LIBRARY} ${CUDA_cublasLt_LIBRARY} ${NCCL_LIBRARY})
        get_filename_component(_real "${_l}" REALPATH)
        get_filename_component(_real "${_real}" DIRECTORY)
        list(APPEND _shardrt_rt_dirs "${_real}")
      endforeach()
      foreach(_d ${_shardrt_rt_dirs})
        list(APPEND CMAKE_BUILD_RPATH "${_d}")
        list(APPEND CMAKE_INSTALL_RPATH "${_d}")
      endforeach()
      list(REMOVE_DUPLICATES CMAKE_BUILD_RPATH)
      list(REMOVE_DUPLICATES CMAKE_INSTALL_RPATH)
    elseif(_shardrt_cuda STREQUAL "ON")
      message(FATAL_ERROR "SHARDRT_CUDA=ON but NCCL was not found (set NCCL_ROOT)")
    else()
      message(WARNING "nvcc found but NCCL missing: building without CUDA")
    endif()
  elseif(_shardrt_cuda STREQUAL "ON")
    message(FATAL_ERROR "SHARDRT_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()
