# SPDX-License-Identifier: Apache-2.0
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS shardrt shardrt_static EXPORT shardrtTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT shardrtTargets NAMESPACE shardrt:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shardrt)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/shardrtConfig.cmake.in
  ${CMAKE_BINARY_DIR}/shardrtConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shardrt)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/shardrtConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/shardrtConfig.cmake ${CMAKE_BINARY_DIR}/shardrtConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/FindNCCL.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/shardrt)
set(SHARDRT_PC_REQUIRES "yaml-0.1 jansson ompi-c")
configure_file(${PROJECT_SOURCE_DIR}/cmake/shardrt.pc.in ${CMAKE_BINARY_DIR}/shardrt.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/shardrt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
