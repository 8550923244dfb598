# SPDX-License-Identifier: Apache-2.0
if(SHARDRT_SANITIZE)
  string(REPLACE ";" "," _san "${SHARDRT_SANITIZE}")
  add_compile_options($<$<COMPILE_LANGUAGE:C>:-fsanitize=${_san}> $<$<COMPILE_LANGUAGE:C>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:C>:-fno-sanitize-recover=all>)
  add_link_options(-fsanitize=${_san})
endif()

function(shardrt_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes>)
  if(SHARDRT_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>)
  endif()
endfunction()
