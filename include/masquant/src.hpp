// src.hpp: explicit instantiations of calibrate(), for the one translation unit of a
// MASQUANT_SEPARATE_COMPILATION build (with the macro defined, <masquant/calibrate/calibrate.hpp>
// only declares calibrate(); include this header in exactly one .cpp file of the program).
// Without the macro it is harmless: the same definitions, instantiated in that file.
#pragma once

#include <masquant/calibrate/detail/calibrate_impl.hpp>

namespace masquant {

template calibration_result calibrate<void>(matrix_view<const float>, vector_view<const float>,
                                            const modality_inputs&, const calibration_config&,
                                            std::vector<std::string>);
template calibration_result calibrate<void>(matrix_view<const float>, vector_view<const float>,
                                            matrix_view<const float>,
                                            vector_view<const modality_id>,
                                            const calibration_config&, std::vector<std::string>);

}  // namespace masquant
