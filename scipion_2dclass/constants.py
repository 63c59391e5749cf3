"""Names shared by the plugin's protocols, converters and viewers."""

from __future__ import annotations

ENGINE_SCRIPT = "twodclass"

# files of an engine job folder: engine.io.jobfolder.JobFiles names them

# the select protocol's record of its decisions and removed particles (in its extra folder;
# not the engine's selection.json, which has another format)
DECISIONS_JSON = "select_decisions.json"

# the input STAR the protocol writes for the engine (in the run's extra folder)
INPUT_STAR = "input_particles.star"
INPUT_STACKS_DIR = "input_stacks"

# STAR column (without the leading underscore) that carries the Scipion particle id
SCIPION_ID_COLUMN = "tdcScipionId"

# extra attributes stored on the output classes
ATTR_RESOLUTION = "_tdc_resolution"
ATTR_PARTICLE_COUNT = "_tdc_particleCount"
ATTR_DISTRIBUTION = "_tdc_classDistribution"
ATTR_ESS = "_tdc_effectiveSampleSize"
ATTR_MEAN_MAX_PROB = "_tdc_meanMaxProb"
ATTR_MAX_PROB = "_tdc_maxProb"
ATTR_LOGLIK = "_tdc_logLikeContribution"

# per-particle statistics of the particle filter (engine.core.particle_residuals), as stored on the
# output particles: run_data.star column -> attribute
PARTICLE_STAT_ATTRS = {
    "tdcResidualLowRes": "_tdc_residualLowRes",
    "tdcSignalLowRes": "_tdc_signalLowRes",
}
# why the particle filter of the selection removed a particle (outputRemovedParticles)
ATTR_REMOVED_REASON = "_tdc_removedReason"

# the engine parameters that the parallel section provides instead of the form
PARALLEL_SPECS = ("threads",)
