package io.github.batchnorm4j;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.Location;
import org.junit.jupiter.api.Test;

import java.util.List;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.Architectures.layeredArchitecture;

/**
 * The layering of docs/design.md ("Architecture"), checked on the compiled main classes: each package depends only on
 * the packages below it — API ← cpu, gpu ← cuda, ptx, distributed ← nccl, cudnn ← train ← cli — so the API package names no
 * implementation (backends come from ServiceLoader), gpu knows no device implementation (no ptx, cuda, cudnn, no
 * JCuda), and no library package uses the command line, the training example, picocli, progressbar or XChart.
 */
class LayeringTest {
    private static final String ROOT = "io.github.batchnorm4j";
    /** The main classes, read from the folder (or jar) BatchNorm.class was loaded from. */
    private static final JavaClasses MAIN = new ClassFileImporter().importLocations(
            List.of(Location.of(BatchNorm.class.getProtectionDomain().getCodeSource().getLocation())));
    private static final String[] LIBRARY = {ROOT, ROOT + ".cpu..", ROOT + ".gpu..", ROOT + ".cuda..",
            ROOT + ".cudnn..", ROOT + ".ptx..", ROOT + ".distributed..", ROOT + ".nccl.."};

    @Test
    void eachPackageUsesOnlyThePackagesBelowIt() {
        layeredArchitecture().consideringOnlyDependenciesInLayers()
                .layer("api").definedBy(ROOT)
                .layer("cpu").definedBy(ROOT + ".cpu..")
                .layer("gpu").definedBy(ROOT + ".gpu..")
                .layer("cuda").definedBy(ROOT + ".cuda..")
                .layer("ptx").definedBy(ROOT + ".ptx..")
                .layer("distributed").definedBy(ROOT + ".distributed..")
                .layer("nccl").definedBy(ROOT + ".nccl..")
                .layer("cudnn").definedBy(ROOT + ".cudnn..")
                .layer("train").definedBy(ROOT + ".train..")
                .layer("cli").definedBy(ROOT + ".cli..")
                .whereLayer("api").mayNotAccessAnyLayer()
                .whereLayer("cpu").mayOnlyAccessLayers("api")
                .whereLayer("gpu").mayOnlyAccessLayers("api")
                .whereLayer("cuda").mayOnlyAccessLayers("api", "gpu")
                .whereLayer("ptx").mayOnlyAccessLayers("api", "gpu")
                .whereLayer("distributed").mayOnlyAccessLayers("api", "gpu")
                .whereLayer("nccl").mayOnlyAccessLayers("api", "gpu", "cuda", "distributed")
                .whereLayer("cudnn").mayOnlyAccessLayers("api", "gpu", "cuda")
                .whereLayer("train").mayOnlyAccessLayers("api", "gpu", "cuda", "distributed", "nccl")
                .whereLayer("cli").mayOnlyAccessLayers("api", "cpu", "gpu", "cuda", "ptx", "cudnn", "train",
                        "distributed", "nccl")
                .check(MAIN);
    }

    @Test
    void theLibraryNeverUsesTheCommandLineOrItsDependencies() {
        noClasses().that().resideInAnyPackage(LIBRARY)
                .should().dependOnClassesThat().resideInAnyPackage("picocli..", "me.tongfei..", "org.knowm..")
                .because("library users do not have the command line's optional dependencies")
                .check(MAIN);
    }

    @Test
    void onlyTheNcclAdapterUsesJavaCpp() {
        noClasses().that().resideOutsideOfPackage(ROOT + ".nccl..")
                .should().dependOnClassesThat().resideInAnyPackage("org.bytedeco..")
                .because("org.bytedeco:cuda is optional: only users of NcclCollective need it on the classpath")
                .check(MAIN);
    }

    @Test
    void onlyTheDevicePackagesUseJCuda() {
        noClasses().that().resideInAnyPackage(ROOT, ROOT + ".cpu..", ROOT + ".gpu..", ROOT + ".ptx..",
                        ROOT + ".distributed..", ROOT + ".nccl..")
                .should().dependOnClassesThat().resideInAnyPackage("jcuda..")
                .because("gpu/ is written against the Device seam; cuda/ (and cudnn/, train's cuBLAS) wrap JCuda")
                .check(MAIN);
    }
}
