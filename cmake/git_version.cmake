# Writes OUT (a header) with the source tree's git commit and dirty flag; rewrites it only when
# they change, so a rebuild recompiles one file. Run at every build (see harness/CMakeLists.txt).
execute_process(COMMAND git rev-parse HEAD WORKING_DIRECTORY ${SRC}
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT commit)
  set(commit "unknown")
  set(dirty 0)
else()
  execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SRC}
                  OUTPUT_VARIABLE status OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(status)
    set(dirty 1)
  else()
    set(dirty 0)
  endif()
endif()
set(text "#define LB_GIT_COMMIT \"${commit}\"\n#define LB_GIT_DIRTY ${dirty}\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
