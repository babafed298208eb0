-- CreateTable
CREATE TABLE "ShadowResult" (
    "predictionId" TEXT NOT NULL,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "shadowVersion" INTEGER NOT NULL,
    "predictedAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "outputs" JSONB,
    "label" TEXT,
    "error" TEXT,
    "latencyMs" DOUBLE PRECISION,
    "primaryLatencyMs" DOUBLE PRECISION,
    "meanAbsoluteDifference" DOUBLE PRECISION,
    "labelsAgree" BOOLEAN,
    "apiKeyId" TEXT,

    CONSTRAINT "ShadowResult_pkey" PRIMARY KEY ("predictionId")
);

-- CreateIndex
CREATE INDEX "ShadowResult_modelName_version_shadowVersion_predictedAt_idx" ON "ShadowResult"("modelName", "version", "shadowVersion", "predictedAt");

-- AddForeignKey
ALTER TABLE "ShadowResult" ADD CONSTRAINT "ShadowResult_predictionId_fkey" FOREIGN KEY ("predictionId") REFERENCES "Prediction"("id") ON DELETE CASCADE ON UPDATE CASCADE;
