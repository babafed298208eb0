-- CreateTable
CREATE TABLE "Prediction" (
    "id" TEXT NOT NULL,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "latencyMs" DOUBLE PRECISION NOT NULL,
    "inputs" JSONB NOT NULL,
    "outputs" JSONB NOT NULL,

    CONSTRAINT "Prediction_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Prediction_modelName_version_id_idx" ON "Prediction"("modelName", "version", "id");

-- CreateIndex
CREATE INDEX "Prediction_createdAt_idx" ON "Prediction"("createdAt");
